package relay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/protocol/replay"
	"github.com/commsec/communicator/streams"
)

// last is the record of one (group, sender): its replay window after the
// last envelope stored, and that envelope's stream sequence.
type last struct {
	window   replay.Window
	epoch    protocol.Epoch // the last envelope's, the sender's newest (0: nothing stored yet)
	revision uint64         // the compare-and-swap fence (0: nothing stored yet)
}

// errConflict means another relay stored an envelope for the same (group,
// sender) first.
var errConflict = errors.New("relay: (group, sender) changed concurrently")

// accepted is the COMM_ACCEPTED bucket with a cache of the last envelope
// this relay read or stored per key. The cache is a hint: the revision
// fence makes a stale entry fail its compare-and-swap, which drops it.
type accepted struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	writes prometheus.Observer // each write's time, until its acknowledgement or failure
	mu     sync.Mutex
	cache  map[string]last
}

func newAccepted(js jetstream.JetStream, stream jetstream.Stream, writes prometheus.Observer) *accepted {
	return &accepted{js: js, stream: stream, writes: writes, cache: map[string]last{}}
}

// get returns the record of key: its window and last revision.
func (a *accepted) get(ctx context.Context, key string) (last, error) {
	a.mu.Lock()
	l, ok := a.cache[key]
	a.mu.Unlock()
	if ok {
		return l, nil
	}
	msg, err := a.stream.GetLastMsgForSubject(ctx, streams.AcceptedPrefix+key)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return last{}, nil
	}
	if err != nil {
		return last{}, fmt.Errorf("relay: reading %s: %w", key, err)
	}
	w, err := windowOf(msg)
	if err != nil {
		return last{}, fmt.Errorf("relay: record of %s: %w", key, err)
	}
	h, err := envelope.ParseHeader(msg.Data)
	if err != nil {
		return last{}, fmt.Errorf("relay: record of %s: %w", key, err)
	}
	l = last{window: w, epoch: h.Epoch, revision: msg.Sequence}
	a.put(key, l)
	return l, nil
}

// windowOf reads the replay window a stored record carries. A record
// stored before windows (it has none) stands for its envelope's counter
// alone: everything below it was refused then too.
func windowOf(msg *jetstream.RawStreamMsg) (replay.Window, error) {
	if text := msg.Header.Get(streams.HeaderWindow); text != "" {
		return replay.ParseText(text)
	}
	h, err := envelope.ParseHeader(msg.Data)
	if err != nil {
		return replay.Window{}, err
	}
	var w replay.Window
	w.Accept(h.Counter)
	return w, nil
}

// store appends env as key's next value, with next, the window once env
// is accepted, if prev is still its last: the message and the record of
// its counter are one write.
func (a *accepted) store(ctx context.Context, h envelope.Header, env []byte, prev last, next replay.Window) (last, error) {
	key := streams.AcceptedKey(h.Group, h.Sender)
	m := nats.NewMsg(streams.AcceptedSubject(h.Group, h.Sender))
	m.Data = env
	m.Header.Set(streams.HeaderEpoch, strconv.FormatUint(uint64(h.Epoch), 10))
	m.Header.Set(streams.HeaderWindow, next.String())
	start := time.Now()
	ack, err := a.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(prev.revision))
	a.writes.Observe(time.Since(start).Seconds())
	if err != nil {
		a.forget(key)
		if isCASFailure(err) {
			return last{}, errConflict
		}
		return last{}, fmt.Errorf("relay: storing %s: %w", key, err)
	}
	stored := last{window: next, epoch: h.Epoch, revision: ack.Sequence}
	a.put(key, stored)
	return stored, nil
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
