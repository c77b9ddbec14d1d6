package gateway

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/streams"
)

// A session receives the accepted messages of its groups in stream order,
// each at most once per connection, from two sources:
//
//   - catch-up: on connect, an ordered consumer filtered on the client's
//     groups reads from its cursor to the end of the stream, waiting for
//     room in the client's queue;
//   - live: the gateway's one consumer of all new messages offers each to
//     the sessions of the group's members; a session that is not live yet
//     buffers the offers, and replays them when its catch-up ends.
//
// next, the first stream sequence not delivered yet, keeps the two from
// overlapping. A membership change during catch-up restarts it from the
// cursor (the client drops what it already has, by its counters).
type delivery struct {
	mu       sync.Mutex
	cursor   uint64
	next     uint64
	live     bool
	pending  []message
	overflow bool // too many offers buffered: catch up again instead
	restart  bool // groups changed during catch-up
}

const maxPending = 1024

// message is one accepted envelope with its stream position.
type message struct {
	seq    uint64
	group  protocol.GroupID
	epoch  protocol.Epoch
	sender protocol.ClientID
	data   []byte
	// deliver is the Deliver frame's body, the same for every member:
	// the live feed makes it once and every session's writer reads it.
	deliver []byte
}

func (d *delivery) init(cursor uint64) {
	d.cursor, d.next = cursor, cursor+1
}

// deliver pushes the client's bundles, catches up its messages, then
// switches it to the live feed.
func (s *session) deliver(groups []protocol.GroupID) {
	if err := s.pushBundles(); err != nil {
		// Without its bundles the client could not open what follows:
		// it reconnects and gets them then.
		s.fail("bundles_unavailable", fmt.Errorf("%w: %w", protocol.ErrUnavailable, err))
		return
	}
	for attempt := 0; ; attempt++ {
		if err := s.catchUp(groups); err != nil {
			s.logAt(zerolog.WarnLevel).Err(err).Msg("catch-up failed")
			select {
			case <-s.done:
				return
			case <-time.After(time.Second):
			}
		}
		if s.goLive() {
			return
		}
		groups = s.gw.groupsOf(s.id)
	}
}

// catchUp delivers the stored messages of groups from next to the end of
// the stream.
func (s *session) catchUp(groups []protocol.GroupID) error {
	if len(groups) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	s.dl.mu.Lock()
	from := s.dl.next
	s.dl.mu.Unlock()
	subjects := make([]string, len(groups))
	for i, g := range groups {
		subjects[i] = streams.GroupAccepted(g)
	}
	return s.gw.readStored(ctx, subjects, from, func(m message) bool {
		return s.deliverWaiting(m)
	})
}

// goLive replays the offers buffered during catch-up and turns the session
// live; it reports false if catch-up must run again.
func (s *session) goLive() bool {
	for {
		s.dl.mu.Lock()
		if s.dl.overflow || s.dl.restart {
			if s.dl.restart {
				s.dl.next = s.dl.cursor + 1
			}
			s.dl.overflow, s.dl.restart, s.dl.pending = false, false, nil
			s.dl.mu.Unlock()
			return false
		}
		batch := s.dl.pending
		s.dl.pending = nil
		if len(batch) == 0 {
			s.dl.live = true
			s.dl.mu.Unlock()
			return true
		}
		s.dl.mu.Unlock()
		for _, m := range batch {
			if !s.deliverWaiting(m) {
				return true
			}
		}
	}
}

// claim decides whether m is due to this session and, if so, advances next.
func (s *session) claim(m message) bool {
	if m.seq < s.dl.next {
		return false
	}
	s.dl.next = m.seq + 1
	return m.sender != s.id && s.gw.mayRead(s.id, m.group, m.epoch)
}

// deliverWaiting delivers m if due, waiting for room in the queue.
func (s *session) deliverWaiting(m message) bool {
	s.dl.mu.Lock()
	due := s.claim(m)
	s.dl.mu.Unlock()
	return !due || s.enqueueWait(deliverFrame(m))
}

// offer is the live feed's hand-over: delivered now if the session is
// live, buffered otherwise.
func (s *session) offer(m message) {
	s.dl.mu.Lock()
	defer s.dl.mu.Unlock()
	if !s.dl.live {
		if len(s.dl.pending) < maxPending {
			s.dl.pending = append(s.dl.pending, m)
		} else {
			s.dl.overflow = true
		}
		return
	}
	if s.claim(m) {
		s.enqueue(deliverFrame(m))
	}
}

// groupsChanged restarts a catch-up in progress with the new groups.
func (s *session) groupsChanged() {
	s.dl.mu.Lock()
	defer s.dl.mu.Unlock()
	if !s.dl.live {
		s.dl.restart = true
	}
}

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
	g.proj.Read(func(s *events.State) {
		grp := s.Groups[gid]
		ok = grp != nil && !grp.Deleted && grp.MayRead(id, e)
	})
	return ok
}

// groupsOf lists the live groups a client is a member of.
func (g *Gateway) groupsOf(id protocol.ClientID) []protocol.GroupID {
	var out []protocol.GroupID
	g.proj.Read(func(s *events.State) {
		for gid, grp := range s.Groups {
			if !grp.Deleted && grp.IsMember(id) {
				out = append(out, gid)
			}
		}
	})
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
	return message{seq: meta.Sequence.Stream, group: g, epoch: protocol.Epoch(e), sender: sender, data: msg.Data()}, meta, true
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

// fanOut offers m to the sessions of its group's members. The Deliver
// body is made once for all of them: a copy to a member allocates nothing.
func (g *Gateway) fanOut(m message) {
	g.awaitEpoch(m.group, m.epoch)
	m.deliver = deliverBody(m)
	for _, s := range g.sessions.group(m.group) {
		s.offer(m)
	}
	g.Metrics.messagesIn.Add(1)
}

func (g *Gateway) awaitEpoch(gid protocol.GroupID, e protocol.Epoch) {
	reached := func(s *events.State) bool {
		grp := s.Groups[gid]
		return grp != nil && grp.Epoch >= e
	}
	ok := false
	g.proj.Read(func(s *events.State) { ok = reached(s) })
	if ok {
		return // the usual case, without a timer
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	g.proj.WaitUntil(ctx, reached)
}

// applied follows the log: a connected client that joins a group starts
// receiving it, one that leaves stops, a revoked one is disconnected.
func (g *Gateway) applied(e *events.Event) {
	switch e.Type {
	case events.MembersAdded:
		for _, id := range e.Members.Clients {
			for _, s := range g.sessions.join(id, e.Members.Group) {
				s.groupsChanged()
			}
		}
	case events.MembersRemoved:
		for _, id := range e.Members.Clients {
			g.sessions.leave(id, e.Members.Group)
		}
	case events.ClientRevoked:
		for _, s := range g.sessions.client(e.Client.ID) {
			s.fail("revoked", protocol.ErrDenied)
		}
	}
}
