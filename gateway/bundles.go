package gateway

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/streams"
)

// pushBundles sends the client every stored bundle of its own, oldest
// first: the keys of every epoch whose messages it may still receive.
// Bundles published meanwhile also arrive through the live feed; the
// client installs a bundle it already has as a no-op.
//
// It reads them one by one from the stream's leader (nextStored), so that
// a lagging replica cannot hide one, and makes no consumer: a consumer
// per connection costs more than the handshake, and a burst of
// connections would leave thousands on the server (an ordered consumer
// outlives its reader by five minutes) until its limit refuses more.
func (s *session) pushBundles() error {
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	subject := streams.MemberBundles(s.id)
	for from, n := uint64(1), 0; n < maxBundlesPushed; n++ {
		seq, data, found, err := s.gw.nextStored(ctx, streams.Bundles, subject, from)
		if err != nil || !found {
			return err
		}
		if !s.enqueueWait(channel.Outgoing{Type: channel.TypeKeyBundle, Body: data}) {
			return nil
		}
		s.gw.Metrics.bundlesOut.Inc()
		from = seq + 1
	}
	return nil
}

// maxBundlesPushed bounds the bundles pushed on a connection: far more
// than a member's groups times the bundles kept per group.
const maxBundlesPushed = 1 << 16

// liveBundle forwards a newly published bundle to its member's sessions.
func (g *Gateway) liveBundle(msg jetstream.Msg) {
	id, _, ok := streams.ParseBundle(msg.Subject())
	if !ok {
		return
	}
	for _, s := range g.sessions.client(id) {
		if s.enqueue(channel.Outgoing{Type: channel.TypeKeyBundle, Body: msg.Data()}) {
			g.Metrics.bundlesOut.Inc()
		}
	}
}
