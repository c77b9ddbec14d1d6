package relay

import (
	"context"
	"errors"
	"hash/maphash"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/benchhook"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/protocol/replay"
	"github.com/commsec/communicator/streams"
)

// Verdict is a relay's answer (streams.Verdict).
type Verdict = streams.Verdict

// The verdicts, as sent back to the gateway in the Comm-Status header.
const (
	Accepted  = streams.VerdictAccepted
	Duplicate = streams.VerdictDuplicate
	Refused   = streams.VerdictRefused
	Retry     = streams.VerdictRetry
)

// job is one inbound message waiting for its worker.
type job struct {
	msg      *nats.Msg
	header   envelope.Header
	received time.Time // by Config.Now: for the rules
	arrived  time.Time // by the monotonic clock: for the decision time
	// waitUntil ends the envelope's wait for its epoch (zero: it has not
	// waited); see epochwait.go.
	waitUntil time.Time
	verified  bool // the sender's signature was checked (a job may be decided twice)
}

// accept's answers that are no verdict: an envelope parked in the wait
// room, and a decision stopped by the FaultAfterStore hook.
const (
	waiting streams.Verdict = "waiting"
	crashed streams.Verdict = "crashed"
)

// workerQueue bounds the envelopes queued for one worker; past it the
// sender is told to retry, and the partition's subscription never waits.
const workerQueue = 64

var seed = maphash.MakeSeed()

func (r *Relay) startWorkers() {
	r.workers = make([]chan *job, r.cfg.Workers)
	for i := range r.workers {
		ch := make(chan *job, workerQueue)
		r.workers[i] = ch
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for j := range ch {
				r.decide(j)
			}
		}()
	}
}

// dispatch receives a partition's messages in order and hands each to the
// worker of its (group, sender). It runs on the subscriptions' callbacks;
// Close waits for every one in progress (gate) before it closes the
// workers, and one that comes later is told to retry.
func (r *Relay) dispatch(m *nats.Msg) {
	if !streams.ReplyAllowed(m.Reply, natsauth.InboxPrefix(natsauth.Gateway)) {
		r.refuseReply(m)
		return
	}
	h, err := envelope.ParseHeader(m.Data)
	if err != nil {
		r.Metrics.count(Refused, streams.ReasonMalformedEnvelope)
		r.log.Debug().Err(err).Str("reason", string(streams.ReasonMalformedEnvelope)).Msg("message refused")
		r.reply(m, Refused, streams.ReasonMalformedEnvelope)
		return
	}
	j := &job{msg: m, header: h, received: r.cfg.Now(), arrived: time.Now()}
	if !r.holds(h.Group) {
		r.answer(j, Retry, streams.ReasonLeaseLapsed)
		return
	}
	switch verdict, reason := r.screen(context.Background(), j); verdict {
	case "":
		r.submit(j) // a candidate for storing: its worker decides
	case waiting:
	default:
		r.answer(j, verdict, reason)
	}
}

// submit hands j to the worker of its (group, sender) without waiting: a
// full queue, or a closed relay, answers "retry". It is called by the
// subscriptions' callbacks and by the wait room.
func (r *Relay) submit(j *job) {
	var h64 maphash.Hash
	h64.SetSeed(seed)
	h64.Write(j.header.Group[:])
	h64.Write(j.header.Sender[:])
	r.gate.RLock()
	defer r.gate.RUnlock()
	if r.closed {
		r.answer(j, Retry, streams.ReasonRelayBusy)
		return
	}
	select {
	case r.workers[h64.Sum64()%uint64(len(r.workers))] <- j:
	default:
		r.answer(j, Retry, streams.ReasonRelayBusy)
	}
}

// refuseReply drops a request whose reply subject is neither a
// cross-account response nor a gateway's inbox: answering it would
// publish with the relay's rights wherever the requester chose (a
// JetStream API subject, a bucket's key). It is not decided either.
func (r *Relay) refuseReply(m *nats.Msg) {
	r.Metrics.badReplies.Inc()
	r.log.Warn().Str("reply", m.Reply).Str("subject", m.Subject).Msg("request with a foreign reply subject dropped")
}

func (r *Relay) decide(j *job) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	verdict, reason := r.accept(ctx, j)
	switch verdict {
	case crashed:
		return // the test hook stopped us, as a crash would
	case waiting:
		return // in the wait room
	}
	r.answer(j, verdict, reason)
}

// answer counts, times, logs (unless accepted) and sends a verdict.
func (r *Relay) answer(j *job, verdict streams.Verdict, reason streams.Reason) {
	r.Metrics.count(verdict, reason)
	r.Metrics.decided(verdict, j.arrived)
	if verdict == Refused || verdict == Retry {
		r.log.Debug().Str("verdict", string(verdict)).Str("reason", string(reason)).Str("group", j.header.Group.String()).
			Str("sender", j.header.Sender.Short()).Uint32("epoch", uint32(j.header.Epoch)).Uint64("counter", j.header.Counter).
			Msg("message not accepted")
	}
	r.reply(j.msg, verdict, reason)
}

func (r *Relay) reply(m *nats.Msg, verdict streams.Verdict, reason streams.Reason) {
	if m.Reply == "" {
		return
	}
	out := nats.NewMsg(m.Reply)
	out.Header.Set(streams.HeaderStatus, string(verdict))
	if reason != "" {
		out.Header.Set(streams.HeaderReason, string(reason))
	}
	r.nc.PublishMsg(out)
}

// screen applies the rules that need no store: the authenticated sender,
// membership, the epoch, counter 2^64-1. It returns "" for a candidate
// for storing, waiting for an envelope it parked in the wait room, or a
// verdict. The partition's callback screens every envelope before it
// reaches a worker, so that one sender's refusals never fill a worker's
// queue; the worker screens again (the log may have moved meanwhile).
func (r *Relay) screen(ctx context.Context, j *job) (streams.Verdict, streams.Reason) {
	sender, err := protocol.ParseClientID(j.msg.Header.Get(streams.HeaderSender))
	if err != nil {
		return Refused, streams.ReasonNoAuthenticatedSender
	}
	if j.header.Sender != sender {
		return Refused, streams.ReasonSenderMismatch
	}
	reason, lead := r.rules(j.header, j.received)
	if lead > 0 {
		return r.futureEpoch(ctx, j, lead)
	}
	if reason != "" {
		return Refused, reason
	}
	if j.header.Counter == protocol.ExhaustedCounter {
		return Refused, streams.ReasonCounterExhausted
	}
	return "", ""
}

// accept applies the acceptance rules and stores an acceptable envelope.
// The sender's signature is checked after the rules that need only the
// projection and before anything is read from or written to the store.
func (r *Relay) accept(ctx context.Context, j *job) (streams.Verdict, streams.Reason) {
	if !r.holds(j.header.Group) { // it may have queued past the lease
		return Retry, streams.ReasonLeaseLapsed
	}
	if verdict, reason := r.screen(ctx, j); verdict != "" {
		return verdict, reason
	}
	if !r.verify(j) {
		return Refused, streams.ReasonBadSignature
	}
	key := streams.AcceptedKey(j.header.Group, j.header.Sender)
	for range 3 {
		prev, err := r.accepted.get(ctx, j.header.Group, j.header.Sender)
		if errors.Is(err, errNoGenuineRecord) { // reading again would not find it either
			r.log.Error().Err(err).Str("key", key).Msg("record forged in the accepted stream: sender refused until it is repaired")
			return Refused, streams.ReasonRecordForged
		}
		if err != nil {
			r.log.Warn().Err(err).Msg("last accepted envelope unavailable")
			return Retry, streams.ReasonStoreUnavailable
		}
		switch prev.window.Check(j.header.Counter) {
		case replay.Duplicate:
			return Duplicate, "" // stored before: the sender learns it
		case replay.Old:
			return Refused, streams.ReasonReplayedCounter
		case replay.Jump:
			return Refused, streams.ReasonCounterJump
		case replay.Exhausted:
			return Refused, streams.ReasonCounterExhausted
		}
		if j.header.Epoch < prev.epoch {
			return Refused, streams.ReasonOldEpoch // the sender has moved on to a newer epoch (§8.3)
		}
		next := prev.window
		next.Accept(j.header.Counter)
		if !r.holds(j.header.Group) {
			return Retry, streams.ReasonLeaseLapsed // another relay may own it now
		}
		reason, err := r.storeCounted(ctx, j, prev, next)
		if reason != "" {
			return r.verdictOf(reason), reason
		}
		if err == errConflict {
			r.Metrics.conflicts.Inc()
			continue
		}
		if err != nil {
			r.log.Warn().Err(err).Msg("message not stored")
			return Retry, streams.ReasonStoreUnavailable
		}
		if hook := r.cfg.FaultAfterStore; hook != nil && hook() != nil {
			return crashed, ""
		}
		return Accepted, ""
	}
	// Never stored, and storable: another relay kept winning the
	// compare-and-swap, which only happens while partitions move.
	return Retry, streams.ReasonCounterContended
}

func (r *Relay) verdictOf(reason streams.Reason) streams.Verdict {
	if reason == streams.ReasonEpochPending {
		return Retry
	}
	return Refused
}

// verify checks j's signature by the sender it names, once per job. A
// refusal is logged as a warning: a gateway passed on a message its
// client did not sign (or a client is broken).
func (r *Relay) verify(j *job) bool {
	if j.verified || benchhook.EnvelopeSignaturesSkipped() {
		return true
	}
	if _, err := envelope.Verify(j.msg.Data); err != nil {
		r.log.Warn().Err(err).Str("reason", string(streams.ReasonBadSignature)).Str("group", j.header.Group.String()).
			Str("sender", j.header.Sender.Short()).Uint64("counter", j.header.Counter).Msg("message not signed by its sender refused")
		return false
	}
	j.verified = true
	return true
}

// storeCounted stores j under the grace rule (grace.go): a message of the
// previous epoch only while the group's count of the current epoch is
// open, excluding the group's other stores meanwhile; one of the current
// epoch counted while the count matters. A reason means not stored.
func (r *Relay) storeCounted(ctx context.Context, j *job, prev last, next replay.Window) (streams.Reason, error) {
	g := j.header.Group
	current := r.currentEpoch(g)
	count, pending := r.grace.count(g, current)
	switch {
	case j.header.Epoch+1 < current:
		// The log moved more than once since screen: no grace two
		// epochs back (clients have dropped that key, §8.3 step 3).
		return streams.ReasonOldEpoch, nil
	case j.header.Epoch < current && count == nil:
		if pending {
			return streams.ReasonEpochPending, nil // the book has not seen the change yet
		}
		return streams.ReasonOldEpoch, nil // this relay cannot vouch for the count: the grace is over
	case j.header.Epoch < current:
		count.lock.Lock()
		defer count.lock.Unlock()
		if !count.open() {
			return streams.ReasonOldEpoch, nil
		}
		_, err := r.accepted.store(ctx, j.header, j.msg.Data, prev, next)
		if err != errConflict && count.n.Load() > 0 {
			count.n.Add(1) // an unknown outcome counts: counting too many only ends the grace sooner
		}
		return "", err
	case count != nil && count.open():
		count.lock.RLock()
		defer count.lock.RUnlock()
		_, err := r.accepted.store(ctx, j.header, j.msg.Data, prev, next)
		if err != errConflict {
			count.n.Add(1)
		}
		return "", err
	}
	_, err := r.accepted.store(ctx, j.header, j.msg.Data, prev, next)
	return "", err
}

// currentEpoch is g's current epoch in the relay's view of the log.
func (r *Relay) currentEpoch(g protocol.GroupID) (e protocol.Epoch) {
	r.proj.Read(func(s *fold.State) {
		if gr := s.Groups[g]; gr != nil {
			e = gr.Epoch
		}
	})
	return e
}

// holds reports whether the relay may decide for group g now: it holds
// the lease of g's partition, and the lease cannot have lapsed
// (partitions.go).
func (r *Relay) holds(g protocol.GroupID) bool {
	return r.parts != nil && r.parts.holds(streams.Partition(g), r.cfg.Now())
}

// futureEpoch decides an envelope whose epoch is lead epochs ahead of
// the relay's view of the log (see epochwait.go): too far ahead, refused;
// else it waits in the wait room, off the workers, until the log moves
// for its group or EpochWait passes; then, still ahead, it is refused if
// the relay's view has reached the end of the log, or told to retry.
func (r *Relay) futureEpoch(ctx context.Context, j *job, lead protocol.Epoch) (streams.Verdict, streams.Reason) {
	now := r.cfg.Now()
	switch {
	case lead > MaxEpochLead:
		return Refused, streams.ReasonFutureEpoch
	case j.waitUntil.IsZero() || now.Before(j.waitUntil):
		if !r.room.park(j, now.Add(r.cfg.EpochWait)) {
			return Retry, streams.ReasonRelayBusy
		}
		if _, lead := r.rules(j.header, j.received); lead <= 0 {
			r.release(j.header.Group) // the log moved while it was being parked
		}
		return waiting, ""
	}
	if end, err := r.events.LastSeq(ctx); err == nil && r.proj.LastSeq() >= end {
		return Refused, streams.ReasonFutureEpoch
	}
	return Retry, streams.ReasonFutureEpoch // the relay lags: not the sender's fault
}

// release sends the envelopes of group g waiting for their epoch back to
// the workers.
func (r *Relay) release(g protocol.GroupID) {
	for _, j := range r.room.release(g) {
		r.submit(j)
	}
}

// eventApplied follows the log for the wait room: any event of a group
// may be the epoch change its waiting envelopes wait for.
func (r *Relay) eventApplied(e *record.Event) {
	r.grace.eventApplied(e, r.proj.LastSeq()) // the follower applies one event, then calls this
	switch {
	case e.Members != nil:
		r.release(e.Members.Group)
	case e.Group != nil:
		r.release(e.Group.ID)
	}
}

// rules checks h against the projection; lead > 0 is how many epochs h is
// ahead of it.
func (r *Relay) rules(h envelope.Header, at time.Time) (reason streams.Reason, lead protocol.Epoch) {
	r.proj.Read(func(s *fold.State) {
		reason, lead = check(s, h, at, r.cfg.Grace)
	})
	return reason, lead
}

func check(s *fold.State, h envelope.Header, at time.Time, grace time.Duration) (streams.Reason, protocol.Epoch) {
	c := s.Clients[h.Sender]
	switch {
	case c == nil:
		return streams.ReasonUnknownSender, 0
	case c.Revoked:
		return streams.ReasonSenderRevoked, 0
	}
	g := s.Groups[h.Group]
	switch {
	case g == nil:
		return streams.ReasonUnknownGroup, 0
	case g.Deleted:
		return streams.ReasonGroupDeleted, 0
	case !g.IsMember(h.Sender):
		return streams.ReasonNotMember, 0
	case h.Epoch > g.Epoch:
		return streams.ReasonFutureEpoch, h.Epoch - g.Epoch
	case h.Epoch == g.Epoch:
		return "", 0
	case h.Epoch+1 == g.Epoch && at.Sub(g.EpochStart) <= grace:
		return "", 0
	}
	return streams.ReasonOldEpoch, 0
}
