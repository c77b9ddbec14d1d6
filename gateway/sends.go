package gateway

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/streams"
)

// relayClient forwards clients' envelopes to the relays and routes each
// verdict back as a SendAck. Requests are published in the client's order
// (from its reader goroutine) to the subject of the group's partition,
// with a reply subject under this gateway's inbox.
type relayClient struct {
	g       *Gateway
	inbox   string
	sub     *nats.Subscription
	mu      sync.Mutex
	seq     uint64
	pending map[string]*pendingSend
	stopC   chan struct{}
	swept   chan struct{} // closed when the sweeper has stopped
}

type pendingSend struct {
	s        *session
	ack      channel.SendAck
	sent     time.Time // forwarded to the relay
	deadline time.Time
}

func newRelayClient(g *Gateway) (*relayClient, error) {
	rc := &relayClient{g: g, inbox: g.nc.NewRespInbox(), pending: map[string]*pendingSend{}, stopC: make(chan struct{}),
		swept: make(chan struct{})}
	sub, err := g.nc.Subscribe(rc.inbox+".*", rc.onReply)
	if err != nil {
		return nil, err
	}
	sub.SetPendingLimits(1<<16, 64<<20)
	rc.sub = sub
	go rc.sweep()
	return rc, nil
}

// send forwards one envelope with the authenticated sender.
func (rc *relayClient) send(s *session, h envelope.Header, env []byte) {
	now := time.Now()
	rc.mu.Lock()
	rc.seq++
	token := strconv.FormatUint(rc.seq, 36)
	rc.pending[token] = &pendingSend{s: s, ack: channel.SendAck{Group: h.Group, Counter: h.Counter},
		sent: now, deadline: now.Add(rc.g.cfg.SendTimeout)}
	rc.mu.Unlock()
	m := nats.NewMsg(streams.InboundSubject(h.Group))
	m.Reply = rc.inbox + "." + token
	m.Data = env
	m.Header.Set(streams.HeaderSender, s.id.String())
	if err := rc.g.nc.PublishMsg(m); err != nil {
		rc.finish(token, streams.VerdictRetry, streams.ReasonPublishFailed)
	}
}

// onReply turns a relay's verdict, or NATS's "no responders", into a SendAck.
func (rc *relayClient) onReply(m *nats.Msg) {
	token := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	verdict := streams.ParseVerdict(m.Header.Get(streams.HeaderStatus))
	reason := streams.Reason(m.Header.Get(streams.HeaderReason))
	if m.Header.Get("Status") == "503" {
		verdict, reason = streams.VerdictRetry, streams.ReasonNoRelay
	}
	rc.finish(token, verdict, reason)
}

// statusOf is the SendAck status of a verdict: a refusal names the
// sender's own standing when that is its reason (PROTOCOL.md §5.5); any
// other reason stays on the server.
func statusOf(verdict streams.Verdict, reason streams.Reason) channel.SendStatus {
	switch verdict {
	case streams.VerdictAccepted:
		return channel.StatusAccepted
	case streams.VerdictDuplicate:
		return channel.StatusDuplicate
	case streams.VerdictRetry:
		return channel.StatusRetry
	}
	switch reason {
	case streams.ReasonOldEpoch:
		return channel.StatusOldEpoch
	case streams.ReasonNotMember:
		return channel.StatusNotMember
	case streams.ReasonSenderRevoked:
		return channel.StatusRevoked
	case streams.ReasonUnknownGroup, streams.ReasonGroupDeleted:
		return channel.StatusNoGroup
	case streams.ReasonFutureEpoch:
		return channel.StatusFutureEpoch
	}
	return channel.StatusRefused
}

// finish answers a pending send with the relay's verdict (and reason).
func (rc *relayClient) finish(token string, verdict streams.Verdict, reason streams.Reason) {
	rc.mu.Lock()
	p := rc.pending[token]
	delete(rc.pending, token)
	rc.mu.Unlock()
	if p == nil {
		return // already timed out
	}
	rc.g.Metrics.verdictTime.Observe(time.Since(p.sent).Seconds())
	rc.g.Metrics.send(verdict, reason)
	p.ack.Status = statusOf(verdict, reason)
	if verdict == streams.VerdictRefused || verdict == streams.VerdictRetry {
		p.s.logAt(zerolog.DebugLevel).Str("verdict", string(verdict)).Str("reason", string(reason)).
			Str("group", p.ack.Group.String()).Uint64("counter", p.ack.Counter).Msg("send not accepted")
	}
	p.s.sendAck(p.ack, true)
}

// sweep answers "retry" for sends the relay did not decide in time.
func (rc *relayClient) sweep() {
	defer close(rc.swept)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-rc.stopC:
			return
		case now := <-t.C:
			for _, token := range rc.expired(now) {
				rc.finish(token, streams.VerdictRetry, streams.ReasonTimeout)
			}
		}
	}
}

func (rc *relayClient) expired(now time.Time) []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for token, p := range rc.pending {
		if now.After(p.deadline) {
			out = append(out, token)
		}
	}
	return out
}

func (rc *relayClient) close() {
	close(rc.stopC)
	<-rc.swept
	rc.sub.Unsubscribe()
}
