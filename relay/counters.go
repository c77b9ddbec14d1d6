package relay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/streams"
)

// last is the last accepted message of one (group, sender).
type last struct {
	counter  uint64
	hash     [32]byte  // SHA-256 of its envelope
	revision uint64    // its KV revision: the compare-and-swap fence (0: none yet)
	at       time.Time // when it was recorded
}

// errConflict means another relay recorded a counter for the same
// (group, sender) first.
var errConflict = errors.New("relay: counter changed concurrently")

// counters is the COMM_COUNTERS bucket with a cache of what this relay
// last read or wrote. The cache is a hint: the revision fence makes a
// stale entry fail its compare-and-swap, which drops it.
type counters struct {
	kv    jetstream.KeyValue
	mu    sync.Mutex
	cache map[string]last
}

func newCounters(kv jetstream.KeyValue) *counters {
	return &counters{kv: kv, cache: map[string]last{}}
}

// get returns the last accepted message of key.
func (c *counters) get(ctx context.Context, key string) (last, error) {
	c.mu.Lock()
	l, ok := c.cache[key]
	c.mu.Unlock()
	if ok {
		return l, nil
	}
	e, err := c.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return last{}, nil
	}
	if err != nil {
		return last{}, fmt.Errorf("relay: reading counter %s: %w", key, err)
	}
	if l, err = decodeLast(e.Value()); err != nil {
		return last{}, fmt.Errorf("relay: counter %s: %w", key, err)
	}
	l.revision, l.at = e.Revision(), e.Created()
	c.put(key, l)
	return l, nil
}

// record replaces prev by next, if prev is still what the bucket holds.
func (c *counters) record(ctx context.Context, key string, prev, next last) (last, error) {
	value := encodeLast(next)
	var rev uint64
	var err error
	if prev.revision == 0 {
		rev, err = c.kv.Create(ctx, key, value)
	} else {
		rev, err = c.kv.Update(ctx, key, value, prev.revision)
	}
	if err != nil {
		c.forget(key)
		if isCASFailure(err) {
			return last{}, errConflict
		}
		return last{}, fmt.Errorf("relay: recording counter %s: %w", key, err)
	}
	next.revision, next.at = rev, time.Now()
	c.put(key, next)
	return next, nil
}

func isCASFailure(err error) bool {
	var apiErr *jetstream.APIError
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

func (c *counters) put(key string, l last) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cache[key] = l
}

func (c *counters) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.cache, key)
}

// forgetPartition drops the cache of every group of partition p: another
// relay may have owned it meanwhile.
func (c *counters) forgetPartition(p int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key := range c.cache {
		if g, err := protocol.ParseGroupID(key[:2*protocol.GroupIDSize]); err == nil && streams.Partition(g) == p {
			delete(c.cache, key)
		}
	}
}

// The value: counter (8, big-endian) | SHA-256 of the envelope (32).
func encodeLast(l last) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 40), l.counter)
	return append(b, l.hash[:]...)
}

func decodeLast(b []byte) (last, error) {
	if len(b) != 40 {
		return last{}, fmt.Errorf("value of %d bytes, want 40", len(b))
	}
	return last{counter: binary.BigEndian.Uint64(b), hash: [32]byte(b[8:])}, nil
}
