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

// accepted is the K shards of the accepted envelopes (streams.Shards),
// with a cache of the last envelope this relay read or stored per key.
// A (group, sender)'s key lives on its group's shard only, so its record
// and its compare-and-swap are on one stream. The cache is a hint: the
// revision fence makes a stale entry fail its compare-and-swap, which
// drops it.
type accepted struct {
	forged prometheus.Counter // last messages skipped as no relay's
	js     jetstream.JetStream
	k      streams.Shards
	shards []jetstream.Stream    // by shard index
	writes []prometheus.Observer // by shard: each write's time, until its acknowledgement or failure
	mu     sync.Mutex
	cache  map[string]last
}

func newAccepted(js jetstream.JetStream, k streams.Shards, shards []jetstream.Stream, writes []prometheus.Observer, forged prometheus.Counter) *accepted {
	return &accepted{js: js, k: k, shards: shards, writes: writes, forged: forged, cache: map[string]last{}}
}

// shard is the stream holding g's envelopes.
func (a *accepted) shard(g protocol.GroupID) jetstream.Stream { return a.shards[a.k.Of(g)] }

// get returns the record of key: its window, its sender's newest epoch
// and last revision. A last message that no relay can have written (its
// envelope is not signed by its sender, or its window does not hold its
// counter: a forger with write access to the stream) is skipped: the
// record is the last one that is genuine, with the forged message's
// sequence as the fence, so that the next store lands after it.
func (a *accepted) get(ctx context.Context, g protocol.GroupID, sender protocol.ClientID) (last, error) {
	key := streams.AcceptedKey(g, sender)
	a.mu.Lock()
	l, ok := a.cache[key]
	a.mu.Unlock()
	if ok {
		return l, nil
	}
	subject, stream := a.k.Subject(g, sender), a.shard(g)
	msg, err := stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return last{}, nil
	}
	if err != nil {
		return last{}, fmt.Errorf("relay: reading %s: %w", key, err)
	}
	l, err = recordOf(a.k, msg)
	if err != nil {
		a.forged.Inc()
		if l, err = a.lastGenuine(ctx, stream, subject, msg.Sequence); err != nil {
			return last{}, fmt.Errorf("relay: record of %s: %w", key, err)
		}
		l.revision = msg.Sequence
	}
	a.put(key, l)
	return l, nil
}

// maxForgedScan bounds the reads lastGenuine makes below a forged last
// message: a sender's record is read again on every cache miss, and a
// subject holds its whole retention period's messages. Past it the
// record is unreadable and the sender refused (errNoGenuineRecord).
const maxForgedScan = 64

// errNoGenuineRecord means no genuine record was found within
// maxForgedScan reads below a forged last message: the stream needs an
// operator, and retrying would only read it again.
var errNoGenuineRecord = errors.New("no genuine record within reach below a forged one")

// lastGenuine returns the record of subject's last genuine message below
// seq (none: an empty record). The stream has no read of a subject's
// previous message, so it reads the subject forward through windows of
// stream sequences ending at seq, each further back and wider than the
// last (8 sequences, then 4 times wider each), and stops at the first
// window that holds a genuine message: a window without the subject's
// messages costs one read, one with them a read each.
func (a *accepted) lastGenuine(ctx context.Context, stream jetstream.Stream, subject string, seq uint64) (last, error) {
	reads := 0
	for end, width := seq, uint64(8); end > 1; width = min(width, 1<<60) * 4 {
		from := uint64(1)
		if end > width {
			from = end - width
		}
		good, found, err := a.lastGenuineIn(ctx, stream, subject, from, end, &reads)
		if err != nil || found {
			return good, err
		}
		end = from
	}
	return last{}, nil
}

// lastGenuineIn reads subject's messages in [from, to) and returns the
// record of the last genuine one, counting each read in reads.
func (a *accepted) lastGenuineIn(ctx context.Context, stream jetstream.Stream, subject string, from, to uint64, reads *int) (good last, found bool, err error) {
	for next := from; next < to; {
		if *reads++; *reads > maxForgedScan {
			return last{}, false, errNoGenuineRecord
		}
		msg, err := stream.GetMsg(ctx, next, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) || (err == nil && msg.Sequence >= to) {
			break
		}
		if err != nil {
			return last{}, false, err
		}
		if l, err := recordOf(a.k, msg); err == nil {
			good, found = l, true
		}
		next = msg.Sequence + 1
	}
	return good, found, nil
}

// recordOf reads a stored message as a record, if a relay can have
// written it: its envelope is signed by its sender and stored on that
// sender's subject in its group's shard of k, and its window holds its
// counter within the window.
func recordOf(k streams.Shards, msg *jetstream.RawStreamMsg) (last, error) {
	h, err := envelope.Verify(msg.Data)
	if err != nil {
		return last{}, err
	}
	if msg.Subject != k.Subject(h.Group, h.Sender) {
		return last{}, errors.New("envelope stored on another sender's subject")
	}
	w, err := windowOf(msg)
	if err != nil {
		return last{}, err
	}
	if w.Check(h.Counter) != replay.Duplicate {
		return last{}, errors.New("window does not hold the envelope's counter")
	}
	return last{window: w, epoch: h.Epoch, revision: msg.Sequence}, nil
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
// its counter are one write, on the group's shard (the expected stream
// is checked by the server: a subject that some misconfiguration routes
// elsewhere fails instead of storing a record where no relay reads it).
func (a *accepted) store(ctx context.Context, h envelope.Header, env []byte, prev last, next replay.Window) (last, error) {
	key := streams.AcceptedKey(h.Group, h.Sender)
	i := a.k.Of(h.Group)
	m := nats.NewMsg(a.k.Subject(h.Group, h.Sender))
	m.Data = env
	m.Header.Set(streams.HeaderEpoch, strconv.FormatUint(uint64(h.Epoch), 10))
	m.Header.Set(streams.HeaderWindow, next.String())
	start := time.Now()
	ack, err := a.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(prev.revision),
		jetstream.WithExpectStream(streams.AcceptedShard(i)))
	a.writes[i].Observe(time.Since(start).Seconds())
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

func isCASFailure(err error) bool { return streams.IsCASFailure(err) }

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
