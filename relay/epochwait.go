package relay

import (
	"sync"
	"time"

	"github.com/commsec/communicator/protocol"
)

// An envelope may name an epoch the relay's view of the event log has not
// reached yet: the keyserver appends an epoch's event before it publishes
// the epoch's bundles, but this relay may apply the event a moment after
// a member sealed with the new key. Such an envelope waits for the log in
// the wait room, not on a worker: a worker decides the messages of many
// senders and partitions, and one sender's envelopes must never hold it.
//
// PROTOCOL.md §8.1 rule 4: an epoch more than MaxEpochLead ahead of the
// relay's view is refused at once (the keyserver opens one epoch per
// change; a relay does not fall that far behind in practice). A nearer
// one waits at most EpochWait for the log; then it is refused if the
// relay's view has reached the end of the log, or answered "retry" if the
// relay is behind.

// MaxEpochLead bounds how far ahead of a relay's view of the log an
// envelope's epoch may be and still wait for the log.
const MaxEpochLead = 16

// Bounds of the wait room.
const (
	maxParkedPerSender = 16   // envelopes of one (group, sender) waiting at once
	maxParked          = 4096 // envelopes waiting at once, in all
)

type senderKey struct {
	group  protocol.GroupID
	sender protocol.ClientID
}

// waitRoom holds the envelopes waiting for their epoch, by group. It is
// safe for concurrent use.
type waitRoom struct {
	mu        sync.Mutex
	byGroup   map[protocol.GroupID][]*job
	perSender map[senderKey]int
	n         int
}

func newWaitRoom() *waitRoom {
	return &waitRoom{byGroup: map[protocol.GroupID][]*job{}, perSender: map[senderKey]int{}}
}

// park lets j wait until deadline; false means the room (or its sender's
// share of it) is full.
func (w *waitRoom) park(j *job, deadline time.Time) bool {
	k := senderKey{j.header.Group, j.header.Sender}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n >= maxParked || w.perSender[k] >= maxParkedPerSender {
		return false
	}
	if j.waitUntil.IsZero() {
		j.waitUntil = deadline
	}
	w.byGroup[k.group] = append(w.byGroup[k.group], j)
	w.perSender[k]++
	w.n++
	return true
}

// release takes every envelope of group g out of the room: the log has
// moved for g, they are to be decided again.
func (w *waitRoom) release(g protocol.GroupID) []*job {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.byGroup[g]
	delete(w.byGroup, g)
	for _, j := range out {
		w.leave(j)
	}
	return out
}

// expired takes out the envelopes whose wait has ended by now.
func (w *waitRoom) expired(now time.Time) []*job {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*job
	for g, list := range w.byGroup {
		kept := list[:0]
		for _, j := range list {
			if now.Before(j.waitUntil) {
				kept = append(kept, j)
				continue
			}
			out = append(out, j)
			w.leave(j)
		}
		if len(kept) == 0 {
			delete(w.byGroup, g)
		} else {
			w.byGroup[g] = kept
		}
	}
	return out
}

// drain takes every envelope out, at shutdown.
func (w *waitRoom) drain() []*job {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*job
	for g, list := range w.byGroup {
		out = append(out, list...)
		delete(w.byGroup, g)
	}
	clear(w.perSender)
	w.n = 0
	return out
}

// leave accounts for j leaving the room; w.mu is held.
func (w *waitRoom) leave(j *job) {
	k := senderKey{j.header.Group, j.header.Sender}
	if w.perSender[k]--; w.perSender[k] <= 0 {
		delete(w.perSender, k)
	}
	w.n--
}

// len is the number of envelopes waiting.
func (w *waitRoom) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// runWaitRoom sends the envelopes whose wait has ended back to the
// workers, for their final verdict, until the returned function is
// called.
func (r *Relay) runWaitRoom() func() {
	stop, done := make(chan struct{}), make(chan struct{})
	tick := max(r.cfg.EpochWait/10, 10*time.Millisecond)
	go func() {
		defer close(done)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				for _, j := range r.room.expired(r.cfg.Now()) {
					r.submit(j)
				}
			}
		}
	}()
	return func() { close(stop); <-done }
}
