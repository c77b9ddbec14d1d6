package gateway

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/streams"
)

// pushBundles sends the client every stored bundle of its own, oldest
// first: the keys of every epoch whose messages it may still receive. It
// reads them with batched direct gets (no consumer is created). Bundles
// published meanwhile also arrive through the live feed; the client
// installs a bundle it already has as a no-op.
func (s *session) pushBundles() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const batch = 256
	for from := uint64(1); ; {
		msgs, err := jetstreamext.GetBatch(ctx, s.gw.js, streams.Bundles, batch,
			jetstreamext.GetBatchSeq(from), jetstreamext.GetBatchSubject(streams.MemberBundles(s.id)))
		if err != nil {
			return err
		}
		n := 0
		for m, err := range msgs {
			if err != nil {
				return noMoreIsFine(err)
			}
			n++
			from = m.Sequence + 1
			if !s.enqueueWait(channel.Outgoing{Type: channel.TypeKeyBundle, Body: m.Data}) {
				return nil
			}
			s.gw.Metrics.bundlesOut.Add(1)
		}
		if n < batch {
			return nil
		}
	}
}

func noMoreIsFine(err error) error {
	if errors.Is(err, jetstreamext.ErrNoMessages) {
		return nil
	}
	return err
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
