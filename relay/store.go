package relay

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/streams"
)

// last is the last accepted envelope of one (group, sender).
type last struct {
	counter  uint64
	hash     [32]byte // SHA-256 of the envelope
	revision uint64   // its stream sequence: the compare-and-swap fence (0: none yet)
}

// errConflict means another relay stored an envelope for the same (group,
// sender) first.
var errConflict = errors.New("relay: (group, sender) changed concurrently")

// accepted is the COMM_ACCEPTED bucket with a cache of the last envelope
// this relay read or stored per key. The cache is a hint: the revision
// fence makes a stale entry fail its compare-and-swap, which drops it.
type accepted struct {
	js    jetstream.JetStream
	kv    jetstream.KeyValue
	mu    sync.Mutex
	cache map[string]last
}

func newAccepted(js jetstream.JetStream, kv jetstream.KeyValue) *accepted {
	return &accepted{js: js, kv: kv, cache: map[string]last{}}
}

// get returns the last accepted envelope of key.
func (a *accepted) get(ctx context.Context, key string) (last, error) {
	a.mu.Lock()
	l, ok := a.cache[key]
	a.mu.Unlock()
	if ok {
		return l, nil
	}
	e, err := a.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return last{}, nil
	}
	if err != nil {
		return last{}, fmt.Errorf("relay: reading %s: %w", key, err)
	}
	h, err := envelope.ParseHeader(e.Value())
	if err != nil {
		return last{}, fmt.Errorf("relay: stored envelope of %s: %w", key, err)
	}
	l = last{counter: h.Counter, hash: sha256.Sum256(e.Value()), revision: e.Revision()}
	a.put(key, l)
	return l, nil
}

// store appends env as key's next value if prev is still its last: the
// message and the record of its counter are one write.
func (a *accepted) store(ctx context.Context, h envelope.Header, env []byte, prev last) (last, error) {
	key := streams.AcceptedKey(h.Group, h.Sender)
	m := nats.NewMsg(streams.AcceptedSubject(h.Group, h.Sender))
	m.Data = env
	m.Header.Set(streams.HeaderEpoch, strconv.FormatUint(uint64(h.Epoch), 10))
	ack, err := a.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(prev.revision))
	if err != nil {
		a.forget(key)
		if isCASFailure(err) {
			return last{}, errConflict
		}
		return last{}, fmt.Errorf("relay: storing %s: %w", key, err)
	}
	next := last{counter: h.Counter, hash: sha256.Sum256(env), revision: ack.Sequence}
	a.put(key, next)
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

func (a *accepted) put(key string, l last) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cache[key] = l
}

func (a *accepted) forget(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.cache, key)
}

// forgetPartition drops the cache of every group of partition p: another
// relay may have owned it meanwhile.
func (a *accepted) forgetPartition(p int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for key := range a.cache {
		if g, err := protocol.ParseGroupID(key[:2*protocol.GroupIDSize]); err == nil && streams.Partition(g) == p {
			delete(a.cache, key)
		}
	}
}
