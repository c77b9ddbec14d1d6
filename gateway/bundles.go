package gateway

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/streams"
)

// pushBundles sends the client every stored bundle of its own, oldest
// first: the keys of every epoch whose messages it may still receive.
// Bundles published meanwhile also arrive through the live feed; the
// client installs a bundle it already has as a no-op.
func (s *session) pushBundles() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return streams.ReadStored(ctx, s.gw.js, streams.Bundles, []string{streams.MemberBundles(s.id)}, 1, func(m jetstream.Msg) bool {
		if !s.enqueueWait(channel.Outgoing{Type: channel.TypeKeyBundle, Body: m.Data()}) {
			return false
		}
		s.gw.Metrics.bundlesOut.Add(1)
		return true
	})
}

// liveBundle forwards a newly published bundle to its member's sessions.
func (g *Gateway) liveBundle(msg jetstream.Msg) {
	parts := strings.Split(msg.Subject(), ".")
	if len(parts) != 4 {
		return
	}
	id, err := protocol.ParseClientID(parts[2])
	if err != nil {
		return
	}
	for _, s := range g.sessions.client(id) {
		if s.enqueue(channel.Outgoing{Type: channel.TypeKeyBundle, Body: msg.Data()}) {
			g.Metrics.bundlesOut.Add(1)
		}
	}
}
