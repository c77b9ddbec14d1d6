package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/streams"
)

// interest is the gateway's share of the live feeds. Each stream leader
// republishes what it stores on a core NATS subject (streams.LiveGroup,
// streams.LiveMemberBundles); the gateway subscribes to the subjects of
// the groups that have a member connected to it and of its connected
// clients, so NATS routes it only those. A feed is reference-counted by
// the (session, group) pairs of the registry and the sessions of each
// client; when the last session of a group or client ends its
// subscription lingers a while (a client that comes back finds its
// feeds warm: reconnects need no read), and a member that leaves a group
// drops it at once.
//
// Every subscription delivers into one channel read by one goroutine:
// NATS keeps a stream's messages in order on a connection, and the
// delivery state machines need them in stream order.
//
// The live feeds are at most once. What can lose a message, and what
// catches it:
//   - a message lost on the way: the next one of the same (group,
//     sender) subject names, in Nats-Last-Sequence, a sequence not seen
//     on that subject (for a subject not seen yet: a sequence above what
//     the group had stored when the subscription took effect). Later
//     messages of the shard (of another subject, or the client's own)
//     may have been acknowledged meanwhile, so the sessions of the group
//     rewind: their cursor goes back below the first sequence that may
//     be lost, and a pass reads from there (session.rewind);
//   - the gateway's channel full (nats.go then drops what comes: a slow
//     consumer), and a reconnect of the NATS connection, both noticed by
//     the reader before it hands over its next message (a reconnect also
//     every checkInterval): all the feeds may have lost messages, and
//     nothing after the loss was handed over: a pass from the cursor;
//   - a lost message that is the last of its subject (no later one shows
//     the gap): republishes are lost when a stream's leader is cut off
//     or frozen as it stores, so at each leader election of a stream
//     the feeds come from (JetStream's advisory, exported to the
//     gateways' account), the gateway reads what the stream stored of
//     its groups (members, for the bundles) in the 30 s before, through
//     one consumer, and handles a message its feeds did not see as a
//     gap (leaderElected).
//
// What is not caught until the client's next connection: a last message
// lost without a leader election (a republish dropped on a route that
// stayed up). A new subscription's interest reaches the other
// nodes of a cluster on the same route as the read of the group's last
// sequence that follows it (settle), so that read sees every message the
// leader stored before the interest arrived.
//
// A feed also knows the last sequence stored of its group (or the last
// bundle of its member), learned from the live messages once its
// subscription took effect and one read at that moment: the cheap check
// of what a connecting client has pending.
type interest struct {
	g       *Gateway
	msgs    chan *nats.Msg
	mu      sync.Mutex
	groups  map[protocol.GroupID]*feed
	members map[protocol.ClientID]*feed
	// reconnects is the connection's reconnect count last seen.
	reconnects uint64
	stopC      chan struct{}
	done       chan struct{}
	// elections is the subscription to the leader elections of the
	// streams the feeds come from; rechecks counts the checks they start
	// (leaderElected), ended by ctx at stop.
	elections *nats.Subscription
	rechecks  sync.WaitGroup
	ctx       context.Context
	cancel    context.CancelFunc
	// checking: a check of the stream runs; checkAgain: an election came
	// during it, so it runs again (in.mu).
	checking, checkAgain map[string]bool
}

// feed is one subscription.
type feed struct {
	sub  *nats.Subscription
	refs int
	idle time.Time // when refs fell to 0: it lingers until idle+linger
	// last is the highest sequence stored on the feed's subjects; known
	// says it is exact (a read at the subscription's start and every live
	// message since, none lost).
	last  uint64
	known bool
	// reading is closed when the read of the last sequence in progress
	// (settle) ends: the sessions that want it meanwhile wait for it
	// rather than read too.
	reading chan struct{}
	// baseline is what the group had stored when the subscription took
	// effect: a subject's first live message must follow nothing newer.
	baseline uint64
	subjects map[string]uint64 // the last sequence seen per subject
}

// Tuning of the live feeds.
const (
	liveBuffer    = 1 << 16 // messages waiting for the fan-out goroutine
	checkInterval = 250 * time.Millisecond
	linger        = 2 * time.Minute // a feed without session stays this long
)

func newInterest(g *Gateway) *interest {
	in := &interest{g: g, msgs: make(chan *nats.Msg, liveBuffer), groups: map[protocol.GroupID]*feed{},
		members: map[protocol.ClientID]*feed{}, reconnects: g.nc.Stats().Reconnects,
		stopC: make(chan struct{}), done: make(chan struct{}), checking: map[string]bool{}, checkAgain: map[string]bool{}}
	in.ctx, in.cancel = context.WithCancel(context.Background())
	return in
}

// start subscribes to the leader elections and runs the fan-out
// goroutine; stop ends it, the checks it started, and every subscription.
func (in *interest) start() error {
	sub, err := in.g.nc.ChanSubscribe(streams.LeaderElectedPrefix+"*", in.msgs)
	if err != nil {
		return fmt.Errorf("gateway: subscribing to leader elections: %w", err)
	}
	in.elections = sub
	go in.run()
	return nil
}

func (in *interest) stop() {
	close(in.stopC)
	<-in.done
	in.cancel()
	in.rechecks.Wait()
	in.elections.Unsubscribe()
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, f := range in.groups {
		f.sub.Unsubscribe()
	}
	for _, f := range in.members {
		f.sub.Unsubscribe()
	}
	clear(in.groups)
	clear(in.members)
}

func (in *interest) run() {
	defer close(in.done)
	t := time.NewTicker(checkInterval)
	defer t.Stop()
	for {
		select {
		case <-in.stopC:
			return
		case msg := <-in.msgs:
			// Only this reader empties the channel: if it was ever full,
			// it is at least this full now. And nats.go counts a
			// reconnect before it subscribes again: a message that came
			// after one finds it counted. Either way, restart before
			// anything later is delivered, so that no acknowledgement
			// passes what was lost.
			full := len(in.msgs) >= cap(in.msgs)-1
			if full || in.g.nc.Stats().Reconnects != in.reconnectsSeen() {
				in.check(time.Now(), full)
			}
			in.receive(msg)
		case now := <-t.C:
			in.check(now, false)
		}
	}
}

func (in *interest) receive(msg *nats.Msg) {
	switch {
	case strings.HasPrefix(msg.Subject, streams.LiveMsgPrefix):
		in.g.liveMessage(msg)
	case strings.HasPrefix(msg.Subject, streams.LiveBundlePrefix):
		in.g.liveBundle(msg)
	case strings.HasPrefix(msg.Subject, streams.LeaderElectedPrefix):
		in.leaderElected(strings.TrimPrefix(msg.Subject, streams.LeaderElectedPrefix))
	}
}

// recheckDelay is how long a check after a leader election waits first:
// republishes sent before the election may still be on their way.
const recheckDelay = 500 * time.Millisecond

// recheckFilters bounds the subjects of one consumer of a check (its
// request stays far below NATS's 1 MB payload limit).
const recheckFilters = 1000

// recheckWindow is how far before an election a check reads: a leader is
// elected within seconds of its predecessor's loss, and what that one
// stored without republishing was stored just before.
const recheckWindow = 30 * time.Second

// leaderElected follows a new leader of stream: messages the old one
// stored may not have been republished, and a lost one followed by no
// message of its subject shows no gap. So the gateway reads what the
// stream stored of its groups (its members, for the bundles' stream) in
// the window before the election, and handles each message its feeds
// did not see as a gap (recheck). One check per stream at a time: an
// election during one has it run again. Called on the fan-out
// goroutine; the advisory of a stream the feeds do not come from is
// ignored.
func (in *interest) leaderElected(stream string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.checking[stream] {
		in.checkAgain[stream] = true
		return
	}
	in.checking[stream] = true
	in.g.Metrics.leaderRechecks.Inc()
	in.rechecks.Add(1)
	go func() {
		defer in.rechecks.Done()
		for again := true; again; {
			in.recheck(stream, time.Now())
			in.mu.Lock()
			again = in.checkAgain[stream] && in.ctx.Err() == nil
			in.checkAgain[stream], in.checking[stream] = false, again
			in.mu.Unlock()
		}
	}()
}

// recheck reads the messages stream stored from recheckWindow before
// the election at on, on the subjects of the groups (members) whose
// feeds know their last sequence; one their feed did not see sends the
// group's sessions back to it (as a gap does), or the member's bundles
// are pushed again from it.
func (in *interest) recheck(stream string, at time.Time) {
	select {
	case <-in.ctx.Done():
		return
	case <-time.After(recheckDelay):
	}
	filters := in.checkedSubjects(stream)
	if len(filters) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(in.ctx, time.Minute)
	defer cancel()
	groups := map[protocol.GroupID]uint64{} // the first sequence missed
	members := map[protocol.ClientID]uint64{}
	read := 0
	var err error
	for chunk := range slices.Chunk(filters, recheckFilters) {
		if e := streams.ReadStoredSince(ctx, in.g.js, stream, chunk, at.Add(-recheckWindow), in.checkStored(stream, groups, members, &read)); e != nil {
			err = e
		}
	}
	for gid, from := range groups {
		in.g.Metrics.liveLost.Inc()
		in.g.rewindGroup(gid, from)
	}
	for id, from := range members {
		in.g.Metrics.liveLost.Inc()
		in.g.repushBundlesFrom(id, from)
	}
	ev := in.g.log.Info()
	if err != nil {
		ev = in.g.log.Warn().Err(err)
	}
	ev.Str("stream", stream).Int("subjects", len(filters)).Int("read", read).Int("groups_behind", len(groups)).
		Int("members_behind", len(members)).Msg("feeds checked after a leader election")
}

// checkStored is recheck's reader of stored messages: each one a feed
// did not see records its group's (member's) first missed sequence.
func (in *interest) checkStored(stream string, groups map[protocol.GroupID]uint64, members map[protocol.ClientID]uint64, read *int) func(jetstream.Msg) bool {
	return func(msg jetstream.Msg) bool {
		meta, err := msg.Metadata()
		if err != nil {
			return true
		}
		*read++
		seq := meta.Sequence.Stream
		if stream == streams.Bundles {
			live := streams.LiveBundlePrefix + strings.TrimPrefix(msg.Subject(), streams.BundlePrefix)
			if id, _, ok := streams.ParseBundle(msg.Subject()); ok && missed(in, in.members, id, live, seq) {
				if first, ok := members[id]; !ok || seq < first {
					members[id] = seq
				}
			}
			return true
		}
		if _, gid, sender, ok := streams.ParseShardSubject(msg.Subject()); ok && missed(in, in.groups, gid, streams.LiveSubject(gid, sender), seq) {
			if first, ok := groups[gid]; !ok || seq < first {
				groups[gid] = seq
			}
		}
		return true
	}
}

// checkedSubjects are the stored subjects of the feeds of stream that
// know their last sequence: its groups' (its members', for the bundles).
func (in *interest) checkedSubjects(stream string) []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []string
	if stream == streams.Bundles {
		for id, f := range in.members {
			if f.known {
				out = append(out, streams.MemberBundles(id))
			}
		}
		return out
	}
	for gid, f := range in.groups {
		if f.known && in.g.shards.Stream(gid) == stream {
			out = append(out, in.g.shards.GroupFilter(gid))
		}
	}
	return out
}

// missed reports whether the feed of k, if it knows its last sequence,
// did not see the message at seq on the live subject: none of the
// subject at seq or later, and seq after what the feed's start read
// covered. It then records seq as seen: the caller reads it again.
func missed[K comparable](in *interest, m map[K]*feed, k K, live string, seq uint64) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	f := m[k]
	if f == nil || !f.known {
		return false
	}
	seen, ok := f.subjects[live]
	if ok && seen >= seq || !ok && seq <= f.baseline {
		return false
	}
	f.subjects[live] = seq
	f.last = max(f.last, seq)
	return true
}

// acquire takes the interest of one more session in each group and, if
// member is set, in a client's bundles; it returns the feeds that do not
// know their last sequence yet (settle reads it), and fresh if it
// subscribed to anything. On an error, what it took is given back.
func (in *interest) acquire(groups []protocol.GroupID, member *protocol.ClientID) (cold []coldFeed, fresh bool, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for i, gid := range groups {
		f, isNew, err := take(in, in.groups, gid, streams.LiveGroup(gid))
		if err != nil {
			for _, g := range groups[:i] {
				drop(in, in.groups, g, false, time.Time{})
			}
			return nil, false, err
		}
		fresh = fresh || isNew
		if !f.known {
			cold = append(cold, coldFeed{group: gid, f: f})
		}
	}
	if member != nil {
		_, isNew, err := take(in, in.members, *member, streams.LiveMemberBundles(*member))
		if err != nil {
			for _, g := range groups {
				drop(in, in.groups, g, false, time.Time{})
			}
			return nil, false, err
		}
		fresh = fresh || isNew
	}
	return cold, fresh, nil
}

func take[K comparable](in *interest, m map[K]*feed, k K, subject string) (f *feed, isNew bool, err error) {
	if f := m[k]; f != nil {
		f.refs++
		return f, false, nil
	}
	sub, err := in.g.nc.ChanSubscribe(subject, in.msgs)
	if err != nil {
		return nil, false, fmt.Errorf("gateway: subscribing to %s: %w", subject, err)
	}
	f = &feed{sub: sub, refs: 1, subjects: map[string]uint64{}}
	m[k] = f
	in.g.Metrics.feeds.Inc()
	return f, true, nil
}

// release gives up one session's interest in groups (and member's
// bundles, if set); a feed left without one lingers, or ends at once.
func (in *interest) release(groups []protocol.GroupID, member *protocol.ClientID, lingering bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	now := time.Now()
	for _, gid := range groups {
		drop(in, in.groups, gid, lingering, now)
	}
	if member != nil {
		drop(in, in.members, *member, lingering, now)
	}
}

func drop[K comparable](in *interest, m map[K]*feed, k K, lingering bool, now time.Time) {
	f := m[k]
	if f == nil || f.refs == 0 {
		return
	}
	if f.refs--; f.refs > 0 {
		return
	}
	if lingering {
		f.idle = now
		return
	}
	f.sub.Unsubscribe()
	delete(m, k)
	in.g.Metrics.feeds.Dec()
}

// coldFeed is a group's feed whose last sequence settle reads.
type coldFeed struct {
	group protocol.GroupID
	f     *feed
}

// settle makes sure the new subscriptions took effect, then reads the
// last stored sequence of each cold group: one JetStream API call each
// (calls), made by the first session that needs it; the others wait for
// that read (a storm of the group's members costs one). A feed whose
// read fails stays cold: its sessions pass.
func (in *interest) settle(ctx context.Context, cold []coldFeed, fresh bool) (calls int) {
	if len(cold) == 0 && !fresh {
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := in.g.nc.FlushWithContext(ctx); err != nil {
		in.g.log.Warn().Err(err).Msg("live feeds not settled")
		return 0
	}
	for _, c := range cold {
		calls += in.settleGroup(ctx, c)
	}
	return calls
}

// settleGroup reads the last sequence of a cold group, or waits for the
// read another session is making; calls is 1 if it read.
func (in *interest) settleGroup(ctx context.Context, c coldFeed) (calls int) {
	in.mu.Lock()
	if c.f.known {
		in.mu.Unlock()
		return 0 // settled by another session meanwhile
	}
	if wait := c.f.reading; wait != nil {
		in.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
		}
		return 0 // still cold if that read failed: the sessions pass
	}
	done := make(chan struct{})
	c.f.reading = done
	in.mu.Unlock()
	defer func() {
		in.mu.Lock()
		c.f.reading = nil
		in.mu.Unlock()
		close(done)
	}()
	seq, err := in.g.lastStored(ctx, in.g.shards.Stream(c.group), in.g.shards.GroupFilter(c.group))
	if err != nil {
		in.g.log.Warn().Err(err).Str("group", c.group.String()).Msg("last sequence of a group unavailable")
		return 1
	}
	in.mu.Lock()
	c.f.last, c.f.baseline, c.f.known = max(c.f.last, seq), max(c.f.baseline, seq), true
	in.mu.Unlock()
	return 1
}

// lastOf is the last stored sequence of group gid, if the gateway knows it.
func (in *interest) lastOf(gid protocol.GroupID) (uint64, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	f := in.groups[gid]
	if f == nil || !f.known {
		return 0, false
	}
	return f.last, true
}

// memberLast is the last bundle sequence of member, if known.
func (in *interest) memberLast(id protocol.ClientID) (uint64, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	f := in.members[id]
	if f == nil || !f.known {
		return 0, false
	}
	return f.last, true
}

// bundlesRead records that every bundle of member up to seq was read
// from the stream after its subscription took effect: its last bundle is
// now known, and a live bundle whose subject's previous one is not after
// seq follows nothing lost (the read queued it).
func (in *interest) bundlesRead(id protocol.ClientID, seq uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if f := in.members[id]; f != nil {
		f.last, f.baseline, f.known = max(f.last, seq), max(f.baseline, seq), true
	}
}

// observeGroup records a live message of group gid at seq on subject,
// whose subject's previous message was at prev; gap: one was lost, at
// from or later (later messages of the group's shard may have been
// delivered and acknowledged since).
func (in *interest) observeGroup(gid protocol.GroupID, subject string, seq, prev uint64) (gap bool, from uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	f := in.groups[gid]
	if f == nil {
		return false, 0
	}
	return f.observe(subject, seq, prev)
}

// observeMember is observeGroup for a member's bundles.
func (in *interest) observeMember(id protocol.ClientID, subject string, seq, prev uint64) (gap bool, from uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	f := in.members[id]
	if f == nil {
		return false, 0
	}
	return f.observe(subject, seq, prev)
}

// observe records a live message; on a gap, from is the first sequence
// that may have been lost: after the subject's last one seen (or after
// the baseline, for a subject not seen yet).
func (f *feed) observe(subject string, seq, prev uint64) (gap bool, from uint64) {
	if seen, ok := f.subjects[subject]; ok {
		gap, from = prev > seen, seen+1
	} else {
		gap, from = f.known && prev > f.baseline, f.baseline+1
	}
	if seq > f.subjects[subject] {
		f.subjects[subject] = seq
	}
	f.last = max(f.last, seq)
	return gap, from
}

func (in *interest) reconnectsSeen() uint64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.reconnects
}

// check ends the feeds that lingered long enough and, after a reconnect
// or if lost (the channel was full), restarts the sessions of every feed.
func (in *interest) check(now time.Time, lost bool) {
	in.mu.Lock()
	var lostGroups []protocol.GroupID
	var lostMembers []protocol.ClientID
	if r := in.g.nc.Stats().Reconnects; r != in.reconnects {
		in.reconnects, lost = r, true
	}
	if lost {
		in.g.Metrics.liveLost.Inc()
	}
	for gid, f := range in.groups {
		if in.expired(f, now) {
			delete(in.groups, gid)
		} else if lost {
			// Cold until settled again; what was seen per subject is
			// stale: the passes read what the feed lost.
			f.known, f.subjects = false, map[string]uint64{}
			lostGroups = append(lostGroups, gid)
		}
	}
	for id, f := range in.members {
		if in.expired(f, now) {
			delete(in.members, id)
		} else if lost {
			f.known, f.subjects = false, map[string]uint64{}
			lostMembers = append(lostMembers, id)
		}
	}
	in.mu.Unlock()
	for _, gid := range lostGroups {
		in.g.restartGroup(gid)
	}
	for _, id := range lostMembers {
		in.g.repushBundles(id)
	}
}

// expired ends a feed that lingered past linger; in.mu is held.
func (in *interest) expired(f *feed, now time.Time) bool {
	if f.refs > 0 || now.Sub(f.idle) < linger {
		return false
	}
	f.sub.Unsubscribe()
	in.g.Metrics.feeds.Dec()
	return true
}

// lastStored returns the sequence of the last message of stream on
// subject (wildcards allowed), 0 if there is none, asking the stream's
// leader (one JetStream API call, no consumer).
func (g *Gateway) lastStored(ctx context.Context, stream, subject string) (uint64, error) {
	req, err := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{subject})
	if err != nil {
		return 0, err
	}
	seq, _, found, err := g.msgGet(ctx, stream, req)
	if !found {
		return 0, err
	}
	return seq, err
}
