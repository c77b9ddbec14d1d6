package gateway

import (
	"context"
	"fmt"
	"strconv"
	"time"

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
	seq    uint64
	group  protocol.GroupID
	epoch  protocol.Epoch
	sender protocol.ClientID
	data   []byte
	stored int64 // when JetStream stored it, in Unix nanoseconds
	// deliver is the Deliver frame's body, the same for every member:
	// the live feed makes it once and every session's writer reads it.
	deliver []byte
}

// runDelivery pushes the client's bundles, then runs passes until the
// session is live (deliverystate.go). It is the session's delivery
// goroutine, counted in the gateway's WaitGroup.
func (s *session) runDelivery() {
	defer s.gw.wg.Done()
	if err := s.pushBundles(); err != nil {
		// Without its bundles the client could not open what follows:
		// it reconnects and gets them then.
		s.fail("bundles_unavailable", fmt.Errorf("%w: %w", protocol.ErrUnavailable, err))
		return
	}
	if !s.sendGroups(true) {
		return
	}
	s.passes()
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

// startPass starts a pass on a goroutine of its own: the session left live
// for a message the gateway could not place yet.
func (s *session) startPass() {
	s.gw.wg.Add(1)
	go func() {
		defer s.gw.wg.Done()
		s.passes()
	}()
}

// passes reads the stored messages of the client's groups from next to
// the end of the stream, again while the state machine asks for it, and
// hands over the live messages kept meanwhile; it returns once the session
// is live, or ended.
func (s *session) passes() {
	for s.ctx.Err() == nil {
		if err := s.catchUp(s.gw.groupsOf(s.id)); err != nil && s.ctx.Err() == nil {
			s.logAt(zerolog.WarnLevel).Err(err).Msg("catch-up failed")
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		for {
			batch, isLive := s.dl.passEnd()
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

// catchUp delivers the stored messages of groups from next to the end of
// the stream.
func (s *session) catchUp(groups []protocol.GroupID) error {
	if len(groups) == 0 {
		return nil
	}
	subjects := make([]string, len(groups))
	for i, g := range groups {
		subjects[i] = streams.GroupAccepted(g)
	}
	return s.gw.readStored(s.ctx, subjects, s.dl.from(), s.deliverWaiting)
}

// deliverWaiting delivers m if due, waiting for the gateway's view of the
// log to reach m's epoch (briefly, on this session's goroutine only) and
// for room in the queue; false means the session ended.
func (s *session) deliverWaiting(m message) bool {
	s.gw.awaitEpoch(s.ctx, m.group, m.epoch)
	if !s.dl.take(m) || !s.due(m) {
		return s.ctx.Err() == nil
	}
	if !s.enqueueWaitStamped(deliverFrame(m), stamp{stored: m.stored, path: pathCatchUp}) {
		return false
	}
	s.dl.queued(m.seq)
	return true
}

// due reports whether m, taken in stream order, is for this client: not
// its own, and of a group and epoch it may read.
func (s *session) due(m message) bool {
	return m.sender != s.id && s.gw.mayRead(s.id, m.group, m.epoch)
}

// offer is the live feed's hand-over of m; inView says whether the
// gateway's view of the log has reached m's epoch.
func (s *session) offer(m message, inView bool) {
	switch s.dl.offer(m, inView) {
	case offerDeliver:
		if s.due(m) && s.enqueueStamped(deliverFrame(m), stamp{stored: m.stored, path: pathLive}) {
			s.dl.queued(m.seq)
		}
	case offerStartPass:
		s.startPass()
	}
}

// groupsChanged restarts a pass in progress with the client's new groups.
func (s *session) groupsChanged() { s.dl.groupsChanged() }

func deliverFrame(m message) channel.Outgoing {
	if m.deliver == nil {
		m.deliver = deliverBody(m)
	}
	return channel.Outgoing{Type: channel.TypeDeliver, Body: m.deliver}
}

func deliverBody(m message) []byte {
	return channel.AppendDeliver(make([]byte, 0, channel.CursorSize+len(m.data)), m.seq, m.data)
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

// readStored calls fn for each stored message on subjects from sequence
// from on, up to the end of the stream, until fn returns false.
func (g *Gateway) readStored(ctx context.Context, subjects []string, from uint64, fn func(message) bool) error {
	return streams.ReadStored(ctx, g.js, streams.AcceptedStream, subjects, from, func(msg jetstream.Msg) bool {
		m, _, ok := toMessage(msg)
		return !ok || fn(m)
	})
}

func toMessage(msg jetstream.Msg) (message, *jetstream.MsgMetadata, bool) {
	meta, err := msg.Metadata()
	if err != nil {
		return message{}, nil, false
	}
	g, sender, ok := streams.ParseAccepted(msg.Subject())
	if !ok {
		return message{}, meta, false
	}
	e, err := strconv.ParseUint(msg.Headers().Get(streams.HeaderEpoch), 10, 32)
	if err != nil {
		return message{}, meta, false
	}
	return message{seq: meta.Sequence.Stream, group: g, epoch: protocol.Epoch(e), sender: sender, data: msg.Data(),
		stored: meta.Timestamp.UnixNano()}, meta, true
}

// startFeeds starts the gateway's two live consumers: accepted messages
// and key bundles, both from now on.
func (g *Gateway) startFeeds(ctx context.Context) error {
	for _, f := range []struct {
		stream, filter string
		handle         func(jetstream.Msg)
	}{
		{streams.AcceptedStream, streams.AllAccepted, g.liveMessage},
		{streams.Bundles, streams.AllBundles, g.liveBundle},
	} {
		cons, err := g.js.OrderedConsumer(ctx, f.stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{f.filter}, DeliverPolicy: jetstream.DeliverNewPolicy,
		})
		if err != nil {
			return err
		}
		cc, err := cons.Consume(f.handle)
		if err != nil {
			return err
		}
		g.stop = append(g.stop, cc.Stop)
	}
	return nil
}

// liveMessage offers a new accepted message to the sessions of its group.
// If it names an epoch the gateway's view of the log has not reached,
// membership is decided after a short wait for the log.
func (g *Gateway) liveMessage(msg jetstream.Msg) {
	if m, _, ok := toMessage(msg); ok {
		g.fanOut(m)
	}
}

// fanOut offers m to the sessions of its group's members. It never waits:
// a message whose epoch the gateway's view of the log has not reached
// sends each of those sessions to a pass of its own, which waits for the
// log. The Deliver body is made once for all of them: a copy to a member
// allocates nothing.
func (g *Gateway) fanOut(m message) {
	inView := g.epochInView(m.group, m.epoch)
	m.deliver = deliverBody(m)
	for _, s := range g.sessions.group(m.group) {
		s.offer(m, inView)
	}
	g.Metrics.messagesIn.Inc()
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
// receiving it, one that leaves stops, a revoked one is disconnected.
func (g *Gateway) applied(e *record.Event) {
	switch e.Type {
	case record.MembersAdded:
		for _, id := range e.Members.Clients {
			for _, s := range g.sessions.join(id, e.Members.Group) {
				s.groupsChanged()
				s.refreshGroups()
			}
		}
	case record.MembersRemoved:
		for _, id := range e.Members.Clients {
			g.sessions.leave(id, e.Members.Group)
			for _, s := range g.sessions.client(id) {
				s.refreshGroups()
			}
		}
	case record.GroupDeleted:
		// Its members' sessions learn that the group is gone.
		for _, s := range g.sessions.group(e.Group.ID) {
			s.refreshGroups()
		}
	case record.ClientRevoked:
		for _, s := range g.sessions.client(e.Client.ID) {
			s.fail("revoked", protocol.ErrDenied)
		}
	}
}
