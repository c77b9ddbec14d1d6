package relay

import (
	"context"
	"crypto/sha256"
	"hash/maphash"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/envelope"
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
	received time.Time
}

var seed = maphash.MakeSeed()

func (r *Relay) startWorkers() {
	r.workers = make([]chan *job, r.cfg.Workers)
	for i := range r.workers {
		ch := make(chan *job, 64)
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
	var h64 maphash.Hash
	h64.SetSeed(seed)
	h64.Write(h.Group[:])
	h64.Write(h.Sender[:])
	r.gate.RLock()
	defer r.gate.RUnlock()
	if r.closed {
		r.reply(m, Retry, streams.ReasonStoreUnavailable)
		return
	}
	r.workers[h64.Sum64()%uint64(len(r.workers))] <- &job{msg: m, header: h, received: r.cfg.Now()}
}

// refuseReply drops a request whose reply subject is neither a
// cross-account response nor a gateway's inbox: answering it would
// publish with the relay's rights wherever the requester chose (a
// JetStream API subject, a bucket's key). It is not decided either.
func (r *Relay) refuseReply(m *nats.Msg) {
	r.Metrics.badReplies.Add(1)
	r.log.Warn().Str("reply", m.Reply).Str("subject", m.Subject).Msg("request with a foreign reply subject dropped")
}

func (r *Relay) decide(j *job) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	verdict, reason := r.accept(ctx, j)
	if verdict == "" {
		return // the test hook stopped us, as a crash would
	}
	r.Metrics.count(verdict, reason)
	if verdict == Refused || verdict == Retry {
		r.log.Debug().Str("verdict", string(verdict)).Str("reason", string(reason)).Str("group", j.header.Group.String()).
			Str("sender", j.header.Sender.Short()).Uint64("counter", j.header.Counter).Msg("message not accepted")
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

// accept applies the acceptance rules and stores an acceptable envelope.
func (r *Relay) accept(ctx context.Context, j *job) (streams.Verdict, streams.Reason) {
	sender, err := protocol.ParseClientID(j.msg.Header.Get(streams.HeaderSender))
	if err != nil {
		return Refused, streams.ReasonNoAuthenticatedSender
	}
	if reason := r.checkRules(ctx, j.header, sender, j.received); reason != "" {
		if reason == streams.ReasonFutureEpoch {
			return Retry, reason // the log has not reached this relay yet: not the sender's fault
		}
		return Refused, reason
	}
	key := streams.AcceptedKey(j.header.Group, sender)
	for range 3 {
		prev, err := r.accepted.get(ctx, key)
		if err != nil {
			r.log.Warn().Err(err).Msg("last accepted envelope unavailable")
			return Retry, streams.ReasonStoreUnavailable
		}
		if j.header.Counter <= prev.counter {
			return again(j, prev)
		}
		_, err = r.accepted.store(ctx, j.header, j.msg.Data, prev)
		if err == errConflict {
			r.Metrics.conflicts.Add(1)
			continue
		}
		if err != nil {
			r.log.Warn().Err(err).Msg("message not stored")
			return Retry, streams.ReasonStoreUnavailable
		}
		if hook := r.cfg.FaultAfterStore; hook != nil && hook() != nil {
			return "", ""
		}
		return Accepted, ""
	}
	return Refused, streams.ReasonCounterContended
}

// again answers an envelope whose counter is not above the last accepted:
// the very last envelope again (a sender whose acknowledgement was lost)
// is a duplicate, not stored twice; anything else is a replay.
func again(j *job, prev last) (streams.Verdict, streams.Reason) {
	if j.header.Counter == prev.counter && sha256.Sum256(j.msg.Data) == prev.hash {
		return Duplicate, ""
	}
	return Refused, streams.ReasonReplayedCounter
}

// checkRules applies the membership and epoch rules; it returns the reason
// for a refusal, or "". A message naming an epoch the relay has not seen
// yet waits, briefly, for the event log to catch up.
func (r *Relay) checkRules(ctx context.Context, h envelope.Header, sender protocol.ClientID, at time.Time) streams.Reason {
	if h.Sender != sender {
		return streams.ReasonSenderMismatch
	}
	reason, future := r.rules(h, at)
	if !future {
		return reason
	}
	wctx, cancel := context.WithTimeout(ctx, r.cfg.EpochWait)
	defer cancel()
	r.proj.WaitUntil(wctx, func(s *events.State) bool {
		g := s.Groups[h.Group]
		return g == nil || g.Epoch >= h.Epoch
	})
	reason, _ = r.rules(h, at)
	return reason
}

// rules checks h against the projection; future reports an epoch ahead of it.
func (r *Relay) rules(h envelope.Header, at time.Time) (reason streams.Reason, future bool) {
	r.proj.Read(func(s *events.State) {
		reason, future = check(s, h, at, r.cfg.Grace)
	})
	return reason, future
}

func check(s *events.State, h envelope.Header, at time.Time, grace time.Duration) (streams.Reason, bool) {
	c := s.Clients[h.Sender]
	switch {
	case c == nil:
		return streams.ReasonUnknownSender, false
	case c.Revoked:
		return streams.ReasonSenderRevoked, false
	}
	g := s.Groups[h.Group]
	switch {
	case g == nil:
		return streams.ReasonUnknownGroup, false
	case g.Deleted:
		return streams.ReasonGroupDeleted, false
	case !g.IsMember(h.Sender):
		return streams.ReasonNotMember, false
	case h.Epoch > g.Epoch:
		return streams.ReasonFutureEpoch, true
	case h.Epoch == g.Epoch:
		return "", false
	case h.Epoch+1 == g.Epoch && at.Sub(g.EpochStart) <= grace:
		return "", false
	}
	return streams.ReasonOldEpoch, false
}
