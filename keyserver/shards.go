package keyserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/commsec/communicator/streams"
)

// spreadWithin bounds the time the keyserver's start spends spreading
// the accepted shards' leaders over a cluster's nodes.
const spreadWithin = 30 * time.Second

// ensureStreams creates or updates the shared streams, with K of the
// accepted envelopes the existing deployment's (a different K asked for
// is refused: streams.ShardsChangedError), then, on a cluster, spreads
// the shards' leaders over the nodes.
func (k *Keyserver) ensureStreams(ctx context.Context) error {
	if err := streams.EnsureAll(ctx, k.js, k.cfg.Streams); err != nil {
		var changed *streams.ShardsChangedError
		if errors.As(err, &changed) {
			k.log.Error().Int("existing", int(changed.Existing)).Int("asked", int(changed.Asked)).
				Msg("refused to change the number of accepted-message shards (docs/SCALING.md, \"Changing the number of shards\")")
		}
		return err
	}
	shards, err := streams.LoadShards(ctx, k.js)
	if err != nil {
		return fmt.Errorf("keyserver: %w", err)
	}
	k.shards = shards
	k.log.Info().Int("shards", int(shards)).Msg("accepted messages sharded")
	if k.cfg.Streams.Replicas > 1 {
		k.spreadLeaders(ctx)
	}
	return nil
}

// spreadLeaders moves the accepted shards' leaders apart (best effort: a
// failure is logged and counted, the keyserver starts anyway, its only
// cost is write capacity). It moves nothing when no node leads two shards
// while another leads none; a move on a running deployment costs the
// shard's writes one leader election (the relays answer "retry"
// meanwhile, which senders retry).
func (k *Keyserver) spreadLeaders(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, spreadWithin)
	defer cancel()
	moves, err := streams.SpreadLeaders(ctx, k.js, k.shards)
	for _, m := range moves {
		k.Metrics.leaderMoves.Inc("moved", "")
		k.log.Info().Str("stream", m.Stream).Str("from", m.From).Str("to", m.To).Msg("accepted shard's leader moved")
	}
	if err != nil {
		k.Metrics.leaderMoves.Inc("failed", "")
		k.log.Warn().Err(err).Msg("accepted shards' leaders not spread over the nodes: their writes share a node")
	}
}

// Shards is K, the number of streams the accepted envelopes are sharded
// over in this deployment.
func (k *Keyserver) Shards() streams.Shards { return k.shards }
