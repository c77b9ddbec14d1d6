package gateway

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/streams"
)

// message is one accepted envelope with its stream position.
type message struct {
	shard  int
	seq    uint64 // in its shard's stream
	group  protocol.GroupID
	epoch  protocol.Epoch
	sender protocol.ClientID
	data   []byte // the envelope: the Deliver body after the cursor, shared by every member
	stored int64  // when JetStream stored it, in Unix nanoseconds
}

// runDelivery takes the session's live feeds, pushes the client the
// bundles it lacks, then, shard by shard, runs passes where something is
// pending or goes live at once (deliverystate.go). It is the session's
// delivery goroutine, counted in the gateway's WaitGroup.
//
// The JetStream API calls of a connect (counted in the metrics):
//   - the cursor's read: none if the client left this gateway recently
//     (the in-memory LRU), or before the gateway's graceful restart (its
//     snapshot, loaded at Start: snapshot.go);
//   - one read per group whose feed was cold, shared by the members of
//     the group connecting meanwhile (interest.settle);
//   - the bundle reads: none if the client confirmed a bundle of the
//     current epoch of each of its groups (bundlesCovered, checked
//     against the view of the log), or if the member's feed is warm and
//     the client confirmed its last bundle; else one plus one per bundle;
//   - per shard with something pending, one pass (an ordered consumer:
//     create, info, its pulls, delete).
//
// Nothing pending: none on a warm gateway; on a restarted one, the
// group reads only, each amortized over its members here.
func (s *session) runDelivery(cold []coldFeed, fresh bool, calls int, confirmed uint64) {
	defer s.gw.wg.Done()
	calls += s.gw.interest.settle(s.ctx, cold, fresh)
	var err error
	if s.bundlesCovered() {
		// Checked after the feeds took effect: a bundle published from
		// now on comes live; one stored before, of an epoch the view
		// has not reached yet, is read at that epoch (epochOpened).
		s.sent.startBundles(confirmed)
		s.bundlesSkipped.Store(true)
		if !s.bundles.goLive() {
			s.repush() // a bundle came live meanwhile: read from the watermark
		}
	} else {
		var n int
		n, err = s.pushBundles(0) // after what it confirmed, if the gateway knows it (start)
		calls += n
	}
	if err != nil {
		// Without its bundles the client could not open what follows:
		// it reconnects and gets them then. (A session that ended
		// meanwhile, its client gone, is not a failure of the reads.)
		if s.ctx.Err() == nil {
			s.fail("bundles_unavailable", fmt.Errorf("%w: %w", protocol.ErrUnavailable, err))
		}
		return
	}
	if !s.sendGroups(true) {
		return
	}
	groups := s.gw.groupsOf(s.id)
	for shard := range s.dl {
		if s.pending(shard, groups) {
			calls += passCalls
			s.passes(shard, true)
		} else {
			s.passes(shard, false)
		}
	}
	s.gw.Metrics.connectCalls.Add(float64(calls))
	s.gw.Metrics.connects.Inc()
}

// passCalls is what a pass costs in JetStream API calls, its pulls left
// out: create, info and delete of its ordered consumer.
const passCalls = 3

// pending reports whether the client may have messages of the shard to
// catch up on: a group of it whose last stored sequence is unknown or
// after the client's cursor.
func (s *session) pending(shard int, groups []protocol.GroupID) bool {
	cursor := s.dl[shard].acknowledged()
	for _, g := range groups {
		if s.gw.shards.Of(g) != shard {
			continue
		}
		if last, ok := s.gw.interest.lastOf(g); !ok || last > cursor {
			return true
		}
	}
	return false
}

// sendGroups queues a Groups frame with the client's groups now: first
// after the bundles pushed at connect (the client then knows it holds
// every key it may use), then on every change of its groups. The frames
// are made and queued in order under groupsMu, so the last one the client
// gets is the latest; first marks the first one.
func (s *session) sendGroups(first bool) bool {
	s.groupsMu.Lock()
	defer s.groupsMu.Unlock()
	if !first && !s.groupsSent {
		return true // the first one, still to come, will be up to date
	}
	s.groupsSent = true
	groups := s.gw.groupsOf(s.id)
	if len(groups) > channel.MaxGroups {
		groups = groups[:channel.MaxGroups]
	}
	return s.enqueueWait(channel.Outgoing{Type: channel.TypeGroups, Body: channel.AppendGroups(nil, groups)})
}

// refreshGroups tells the client its groups changed, on a goroutine of its
// own (owned by the gateway): the event feed never waits for a client.
func (s *session) refreshGroups() {
	s.gw.wg.Add(1)
	go func() {
		defer s.gw.wg.Done()
		s.sendGroups(false)
	}()
}

// startPass starts a pass of a shard on a goroutine of its own: the
// session left live for a message the gateway could not place yet.
func (s *session) startPass(shard int) {
	s.gw.wg.Add(1)
	go func() {
		defer s.gw.wg.Done()
		s.passes(shard, true)
	}()
}

// restart sends the shard's delivery back to a pass from the cursor.
func (s *session) restart(shard int) {
	if s.dl[shard].restart() {
		s.startPass(shard)
	}
}

// rewind sends the shard's delivery back to a pass from sequence from,
// below its cursor if need be, and has the lowered cursor stored: a
// message lost on the live feed must not stay behind a cursor that later
// acknowledgements moved past it.
func (s *session) rewind(shard int, from uint64) {
	if s.dl[shard].rewind(from) {
		s.startPass(shard)
	}
}

// passes reads the stored messages of the client's groups on a shard
// from next to the end of the stream (at first only if read), again
// while the state machine asks for it, and hands over the live messages
// kept meanwhile; it returns once the shard is live, or the session ended.
func (s *session) passes(shard int, read bool) {
	d := &s.dl[shard]
	for s.ctx.Err() == nil {
		if read {
			if err := s.catchUp(shard); err != nil && s.ctx.Err() == nil {
				s.logAt(zerolog.WarnLevel).Err(err).Msg("catch-up failed")
				select {
				case <-s.ctx.Done():
					return
				case <-time.After(time.Second):
				}
				continue
			}
		}
		read = true
		for {
			batch, isLive := d.passEnd()
			if isLive {
				return
			}
			if batch == nil {
				break // another pass
			}
			for _, m := range batch {
				if !s.deliverWaiting(m) {
					return
				}
			}
		}
	}
}

// catchUp delivers the stored messages of the client's groups on a shard
// from next to the end of the stream.
func (s *session) catchUp(shard int) error {
	var subjects []string
	for _, g := range s.gw.groupsOf(s.id) {
		if s.gw.shards.Of(g) == shard {
			subjects = append(subjects, s.gw.shards.GroupFilter(g))
		}
	}
	if len(subjects) == 0 {
		return nil
	}
	s.gw.Metrics.consumers.Inc()
	return s.gw.readStored(s.ctx, shard, subjects, s.dl[shard].from(), s.deliverWaiting)
}

// deliverWaiting delivers m if due, waiting for the gateway's view of the
// log to reach m's epoch (briefly, on this session's goroutine only) and
// for room in the queue; false means the session ended.
func (s *session) deliverWaiting(m message) bool {
	s.gw.awaitEpoch(s.ctx, m.group, m.epoch)
	if !s.dl[m.shard].take(m) {
		return s.ctx.Err() == nil
	}
	if !s.due(m) {
		s.skip(m)
		return s.ctx.Err() == nil
	}
	return s.enqueueDeliver(m, stamp{stored: m.stored, path: pathCatchUp}, true)
}

// skip acknowledges, with the deliveries before it, a message taken in
// order that is not for the client.
func (s *session) skip(m message) { s.sent.skip(m.shard, m.seq, s.acked) }

// due reports whether m, taken in stream order, is for this client: not
// its own, and of a group and epoch it may read.
func (s *session) due(m message) bool {
	return m.sender != s.id && s.gw.mayRead(s.id, m.group, m.epoch)
}

// offer is the live feed's hand-over of m; inView says whether the
// gateway's view of the log has reached m's epoch.
func (s *session) offer(m message, inView bool) {
	switch s.dl[m.shard].offer(m, inView) {
	case offerDeliver:
		if !s.due(m) {
			s.skip(m)
			return
		}
		s.enqueueDeliver(m, stamp{stored: m.stored, path: pathLive}, false)
	case offerStartPass:
		s.startPass(m.shard)
	}
}

// groupsChanged restarts a pass in progress with the client's new groups.
func (s *session) groupsChanged() {
	for i := range s.dl {
		s.dl[i].groupsChanged()
	}
}

// enqueueDeliver numbers a Deliver frame of m and queues it, waiting for
// room if wait (catch-up) or ending a client whose queue is full (live).
// The number and the queue's order are taken together: the cursors the
// client sees strictly increase.
func (s *session) enqueueDeliver(m message, st stamp, wait bool) bool {
	o := &s.out
	o.mu.Lock()
	for wait && len(o.queue) >= s.gw.cfg.QueueSize && !o.closed {
		o.room.Wait()
	}
	if o.closed {
		o.mu.Unlock()
		return false
	}
	if len(o.queue) >= s.gw.cfg.QueueSize {
		o.mu.Unlock()
		s.fail("slow", protocol.ErrSlowClient)
		return false
	}
	n, ok := s.sent.add(m.shard, m.seq)
	if !ok {
		o.mu.Unlock()
		s.fail("slow_client", fmt.Errorf("%w: %d deliveries not acknowledged", protocol.ErrSlowClient, maxUnacked))
		return false
	}
	o.push(channel.Outgoing{Type: channel.TypeDeliver, Body: m.data, Cursor: n, HasCursor: true}, st)
	o.mu.Unlock()
	return true
}

// mayRead reports whether the client may be delivered a message of group
// g in epoch e: a member now, and a member since e or earlier.
func (g *Gateway) mayRead(id protocol.ClientID, gid protocol.GroupID, e protocol.Epoch) bool {
	ok := false
	g.proj.Read(func(s *fold.State) {
		grp := s.Groups[gid]
		ok = grp != nil && !grp.Deleted && grp.MayRead(id, e)
	})
	return ok
}

// groupsOf lists the live groups a client is a member of.
func (g *Gateway) groupsOf(id protocol.ClientID) []protocol.GroupID {
	var out []protocol.GroupID
	g.proj.Read(func(s *fold.State) { out = s.GroupsOf(id) })
	return out
}

// readStored calls fn for each stored message of a shard on subjects
// from sequence from on, up to the end of the stream, until fn returns
// false.
func (g *Gateway) readStored(ctx context.Context, shard int, subjects []string, from uint64, fn func(message) bool) error {
	return streams.ReadStored(ctx, g.js, streams.AcceptedShard(shard), subjects, from, func(msg jetstream.Msg) bool {
		m, ok := storedMessage(msg)
		return !ok || fn(m)
	})
}

func storedMessage(msg jetstream.Msg) (message, bool) {
	meta, err := msg.Metadata()
	if err != nil {
		return message{}, false
	}
	shard, g, sender, ok := streams.ParseShardSubject(msg.Subject())
	if !ok {
		return message{}, false
	}
	e, err := strconv.ParseUint(msg.Headers().Get(streams.HeaderEpoch), 10, 32)
	if err != nil {
		return message{}, false
	}
	return message{shard: shard, seq: meta.Sequence.Stream, group: g, epoch: protocol.Epoch(e), sender: sender,
		data: msg.Data(), stored: meta.Timestamp.UnixNano()}, true
}

// liveMessage offers a message of the live feed to the sessions of its
// group, after checking that none of its subject was lost before it.
func (g *Gateway) liveMessage(msg *nats.Msg) {
	m, prev, ok := g.liveToMessage(msg)
	if !ok {
		return
	}
	if gap, from := g.interest.observeGroup(m.group, msg.Subject, m.seq, prev); gap {
		g.Metrics.liveLost.Inc()
		g.rewindGroup(m.group, from)
	}
	g.fanOut(m)
}

// liveToMessage reads a republished envelope; prev is the sequence of the
// previous message of its (group, sender) subject.
func (g *Gateway) liveToMessage(msg *nats.Msg) (m message, prev uint64, ok bool) {
	gid, sender, ok := streams.ParseAcceptedKey(strings.TrimPrefix(msg.Subject, streams.LiveMsgPrefix))
	if !ok || msg.Header.Get(streams.HeaderNatsStream) != g.shards.Stream(gid) {
		return m, 0, false
	}
	seq, err := strconv.ParseUint(msg.Header.Get(streams.HeaderNatsSequence), 10, 64)
	if err != nil {
		return m, 0, false
	}
	prev, _ = strconv.ParseUint(msg.Header.Get(streams.HeaderNatsLastSequence), 10, 64)
	e, err := strconv.ParseUint(msg.Header.Get(streams.HeaderEpoch), 10, 32)
	if err != nil {
		return m, 0, false
	}
	var stored int64
	if t, err := time.Parse(time.RFC3339Nano, msg.Header.Get(streams.HeaderNatsTimeStamp)); err == nil {
		stored = t.UnixNano()
	}
	return message{shard: g.shards.Of(gid), seq: seq, group: gid, epoch: protocol.Epoch(e), sender: sender,
		data: msg.Data, stored: stored}, prev, true
}

// fanOut offers m to the sessions of its group's members. It never waits:
// a message whose epoch the gateway's view of the log has not reached
// sends each of those sessions to a pass of its own, which waits for the
// log. Every copy shares m's envelope; only the cursor is each one's.
func (g *Gateway) fanOut(m message) {
	inView := g.epochInView(m.group, m.epoch)
	for _, s := range g.sessions.group(m.group) {
		s.offer(m, inView)
	}
	g.Metrics.messagesIn.Inc()
}

// rewindGroup sends the sessions of a group's members to a pass of the
// group's shard from sequence from: its live feed lost a message there
// or later.
//
// The cursors this gateway keeps of the group's members come down too,
// those of members not connected now included (they may have left after
// acknowledging past the loss): they are written lowered in the next
// batch. A member whose cursor this gateway no longer holds in memory
// is not lowered (docs/SCALING.md, what is left).
func (g *Gateway) rewindGroup(gid protocol.GroupID, from uint64) {
	shard := g.shards.Of(gid)
	live := map[protocol.ClientID]saved{}
	for _, s := range g.sessions.group(gid) {
		s.rewind(shard, from)
		live[s.id] = s.saved()
	}
	var members []protocol.ClientID
	g.proj.Read(func(st *fold.State) {
		if grp := st.Groups[gid]; grp != nil {
			members = make([]protocol.ClientID, 0, len(grp.Members))
			for id := range grp.Members {
				members = append(members, id)
			}
		}
	})
	g.cursors.lower(members, shard, from, live)
}

// restartGroup sends the sessions of a group's members to a pass of the
// group's shard from their cursors: its live feed may have lost messages.
func (g *Gateway) restartGroup(gid protocol.GroupID) {
	shard := g.shards.Of(gid)
	for _, s := range g.sessions.group(gid) {
		s.restart(shard)
	}
}

// epochInView reports whether the gateway's view of the log has reached
// epoch e of group gid.
func (g *Gateway) epochInView(gid protocol.GroupID, e protocol.Epoch) bool {
	ok := false
	g.proj.Read(func(s *fold.State) {
		grp := s.Groups[gid]
		ok = grp != nil && grp.Epoch >= e
	})
	return ok
}

// epochWait bounds a pass's wait for the log to reach a message's epoch;
// after it, the client's right to read is decided on what the view has.
const epochWait = 2 * time.Second

// awaitEpoch waits, at most epochWait, until the gateway's view of the
// log has reached epoch e of group gid.
func (g *Gateway) awaitEpoch(ctx context.Context, gid protocol.GroupID, e protocol.Epoch) {
	if g.epochInView(gid, e) {
		return // the usual case, without a timer
	}
	ctx, cancel := context.WithTimeout(ctx, epochWait)
	defer cancel()
	g.proj.WaitUntil(ctx, func(s *fold.State) bool {
		grp := s.Groups[gid]
		return grp == nil || grp.Epoch >= e
	})
}

// applied follows the log: a connected client that joins a group starts
// receiving it (the gateway takes the group's interest, and the client's
// shard passes from its cursor, since the group's messages stored before
// the interest took effect came to nobody here), one that leaves stops,
// a revoked one is disconnected.
func (g *Gateway) applied(e *record.Event) {
	switch e.Type {
	case record.MembersAdded:
		for _, id := range e.Members.Clients {
			for _, s := range g.sessions.join(id, e.Members.Group) {
				s.joined(e.Members.Group)
			}
		}
	case record.MembersRemoved:
		for _, id := range e.Members.Clients {
			left := g.sessions.leave(id, e.Members.Group)
			for range left {
				g.interest.release([]protocol.GroupID{e.Members.Group}, nil, false)
			}
			for _, s := range g.sessions.client(id) {
				s.refreshGroups()
			}
		}
	case record.GroupDeleted:
		// Its members' sessions learn that the group is gone.
		for _, s := range g.sessions.dropGroup(e.Group.ID) {
			g.interest.release([]protocol.GroupID{e.Group.ID}, nil, false)
			s.refreshGroups()
		}
	case record.ClientRevoked:
		for _, s := range g.sessions.client(e.Client.ID) {
			s.fail("revoked", protocol.ErrDenied)
		}
	}
	switch e.Type {
	case record.MembersAdded, record.MembersRemoved, record.GroupRekeyed:
		g.epochOpened(e.Members.Group)
	}
}

// joined takes the interest of a session in a group it joined and, once
// it took effect, restarts the group's shard from the cursor; on a
// goroutine of its own: the event feed never waits.
func (s *session) joined(gid protocol.GroupID) {
	s.groupsChanged()
	cold, fresh, err := s.gw.interest.acquire([]protocol.GroupID{gid}, nil)
	if err != nil {
		s.fail("feed_unavailable", fmt.Errorf("%w: %w", protocol.ErrUnavailable, err))
		return
	}
	s.gw.wg.Add(1)
	go func() {
		defer s.gw.wg.Done()
		s.gw.interest.settle(s.ctx, cold, fresh)
		s.restart(s.gw.shards.Of(gid))
		s.sendGroups(false)
	}()
}
