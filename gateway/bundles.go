package gateway

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/streams"
)

// pushBundles sends the client its stored bundles from sequence from on
// (0: after the session's watermark, see below; never from further on),
// oldest first: the keys of every epoch whose messages it may still
// receive, less those it confirmed on a connection to this gateway that
// ended less than a feed's linger ago (from is after them: see start).
// When the member's live feed knows that nothing was stored since, it
// reads nothing. calls counts the reads.
//
// It reads them one by one from the stream's leader (nextStored), so that
// a lagging replica cannot hide one, and makes no consumer: a consumer
// per connection costs more than the handshake, and a burst of
// connections would leave thousands on the server (an ordered consumer
// outlives its reader by five minutes) until its limit refuses more.
//
// The client must get each group's bundles in epoch order: it takes a
// message of an epoch below the newest key it holds as never to open
// (PROTOCOL.md 5.6). So while a push reads, the live feed's bundles are
// not queued but left to it (bundleOrder); it reads again if one came
// after its last read. The session's bundle watermark (deliveries.bundle:
// every bundle up to it was queued) follows the push, then the live feed.
func (s *session) pushBundles(from uint64) (calls int, err error) {
	s.bundles.pushMu.Lock()
	defer s.bundles.pushMu.Unlock()
	s.bundles.pushing()
	if next := s.sent.queuedBundle() + 1; from == 0 || from > next {
		from = next // 0: after the watermark; never past it
	}
	if last, ok := s.gw.interest.memberLast(s.id); !ok || last >= from {
		if calls, err = s.readBundles(from); err != nil {
			return calls, err
		}
	}
	for !s.bundles.goLive() {
		n, err := s.readBundles(s.sent.queuedBundle() + 1)
		calls += n
		if err != nil {
			return calls, err
		}
	}
	return calls, nil
}

// readBundles queues the client's stored bundles from sequence from on.
func (s *session) readBundles(from uint64) (calls int, err error) {
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	subject := streams.MemberBundles(s.id)
	for n := 0; n < maxBundlesPushed; n++ {
		calls++
		seq, data, found, err := s.gw.nextStored(ctx, streams.Bundles, subject, from)
		if err != nil {
			return calls, err
		}
		if !found {
			s.gw.interest.bundlesRead(s.id, from-1)
			return calls, nil
		}
		if !s.enqueueWait(channel.Outgoing{Type: channel.TypeKeyBundle, Body: data}) {
			return calls, nil
		}
		s.sent.bundleQueued(seq, data, s.id)
		s.gw.Metrics.bundlesOut.Inc()
		from = seq + 1
	}
	return calls, nil
}

// bundleOrder is whether the live feed's bundles may go straight to the
// client: not while a push reads the stream (it would queue a later
// bundle before an earlier one the push has not reached), nor after a
// bundle the feed lost. A bundle the feed does not queue is stored
// already: the push reads it, and goes on reading if one came after
// its last read.
type bundleOrder struct {
	pushMu  sync.Mutex // one push at a time
	mu      sync.Mutex
	live    bool // no push reads: live bundles are queued
	skipped bool // a live bundle was left to the push in progress
}

// pushing marks a push started: live bundles are left to it.
func (b *bundleOrder) pushing() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.live = false
}

// restart is pushing, for a push that follows a loss: one in progress
// must read again too.
func (b *bundleOrder) restart() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.live, b.skipped = false, true
}

// goLive ends a push that read to the end, unless a live bundle came
// meanwhile (false: read again).
func (b *bundleOrder) goLive() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.skipped {
		b.skipped = false
		return false
	}
	b.live = true
	return true
}

// offer says whether a live bundle is queued now (queue runs under the
// lock, so that the queue keeps the feed's order), or left to a push:
// one in progress, or, if lost (the feed lost a bundle before this one),
// one the caller starts.
func (b *bundleOrder) offer(lost bool, queue func()) (startPush bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !b.live:
		b.skipped = true
		return false
	case lost:
		b.live = false
		return true
	}
	queue()
	return false
}

// maxBundlesPushed bounds the bundles pushed on a connection: far more
// than a member's groups times the bundles kept per group.
const maxBundlesPushed = 1 << 16

// liveBundle forwards a newly published bundle to its member's sessions.
// One that follows a lost bundle of its subject pushes the member's
// bundles again.
func (g *Gateway) liveBundle(msg *nats.Msg) {
	id, _, ok := streams.ParseBundle(streams.BundlePrefix + strings.TrimPrefix(msg.Subject, streams.LiveBundlePrefix))
	if !ok || msg.Header.Get(streams.HeaderNatsStream) != streams.Bundles {
		return
	}
	seq, err := strconv.ParseUint(msg.Header.Get(streams.HeaderNatsSequence), 10, 64)
	if err != nil {
		return
	}
	prev, _ := strconv.ParseUint(msg.Header.Get(streams.HeaderNatsLastSequence), 10, 64)
	lost, from := g.interest.observeMember(id, msg.Subject, seq, prev)
	if lost {
		g.Metrics.liveLost.Inc()
	}
	for _, s := range g.sessions.client(id) {
		push := s.bundles.offer(lost, func() {
			if s.enqueue(channel.Outgoing{Type: channel.TypeKeyBundle, Body: msg.Data}) {
				g.Metrics.bundlesOut.Inc()
				s.sent.bundleQueued(seq, msg.Data, id)
			}
		})
		if push {
			s.startPush(from) // it reads this bundle after the lost one
		}
	}
}

// repushBundles pushes a member's sessions their bundles again, from the
// last one each queued in order: the live feed may have lost one.
func (g *Gateway) repushBundles(id protocol.ClientID) { g.repushBundlesFrom(id, 0) }

// repushBundlesFrom is repushBundles from sequence from at the latest (0:
// from the watermark).
func (g *Gateway) repushBundlesFrom(id protocol.ClientID, from uint64) {
	for _, s := range g.sessions.client(id) {
		s.repushFrom(from)
	}
}

// repush pushes the session its bundles again from the last one it
// queued in order, on a goroutine of its own (owned by the gateway);
// from now on the live feed's bundles are left to it.
func (s *session) repush() { s.repushFrom(0) }

// repushFrom is repush from sequence from (0: after the watermark). A
// push in progress reads again before it goes live: a live bundle may
// have been queued past a lost one before this call.
func (s *session) repushFrom(from uint64) {
	s.bundles.restart()
	s.startPush(from)
}

// startPush runs a push from sequence from (0: after the watermark).
func (s *session) startPush(from uint64) {
	s.gw.wg.Add(1)
	go func() {
		defer s.gw.wg.Done()
		if _, err := s.pushBundles(from); err != nil && s.ctx.Err() == nil {
			s.fail("bundles_unavailable", fmt.Errorf("%w: %w", protocol.ErrUnavailable, err))
		}
	}()
}

// bundlesCovered reports whether the client confirmed, on this or an
// earlier connection, a bundle of the current epoch of each of its
// groups in the gateway's view of the log: it then holds every key it
// needs, and the connect reads no bundle (runDelivery). No API call.
func (s *session) bundlesCovered() bool {
	epochs := s.sent.confirmedEpochs()
	ok := false
	s.gw.proj.Read(func(st *fold.State) { ok = epochs.covers(st, s.id) })
	return ok
}

// epochOpened follows a new epoch of group gid in the log: a session of
// a member that skipped its bundle push at connect (bundlesCovered) had
// its bundle feed subscribed after checking the view; a bundle of this
// epoch stored before the subscription took effect, while the view had
// not reached the epoch yet, came through neither. Such a session reads
// its bundles once (the first new epoch after its connect), after which
// its bundle feed knows its last sequence and catches what it loses.
func (g *Gateway) epochOpened(gid protocol.GroupID) {
	for _, s := range g.sessions.group(gid) {
		if s.bundlesSkipped.CompareAndSwap(true, false) {
			s.repush()
		}
	}
}
