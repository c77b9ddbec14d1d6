package streams

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/protocol"
)

// The accepted envelopes are sharded over K streams, each alone in a NATS
// account of its own (package natsauth renders MaxShards of them, so K is
// not part of the NATS configuration). Relay partition p lives on shard
// p mod K: a group's envelopes, and so its counters, are on exactly one
// shard, and a relay's compare-and-swap stays one write on one stream.
//
// Shard 0 keeps the name and subjects of the single stream of the
// versions before sharding (KV_COMM_ACCEPTED, $KV.COMM_ACCEPTED.>): such a
// deployment is shard 0 of K = 1, and runs on as it is.
const (
	// DefaultShards is K for a new deployment: 4 shards spread a 3-node
	// cluster's leaders over every node, and measured 1.9× the accepted
	// messages of one stream on one 2-core machine (docs/SCALING.md).
	DefaultShards = 4
	// MaxShards bounds K; it must divide Partitions.
	MaxShards = 16
	// MetaShards is the stream metadata key holding K on every shard:
	// relays and gateways read it from shard 0 (none: K = 1, the
	// stream of a version before sharding).
	MetaShards = "comm.accepted.shards"
	// MetaShard is the stream metadata key holding a shard's index.
	MetaShard = "comm.accepted.shard"
)

// Shards is K, the number of shards of the accepted envelopes.
type Shards int

// ErrShardCount is a K that cannot be used.
var ErrShardCount = errors.New("streams: the number of accepted-message shards must divide 64 (1, 2, 4, 8 or 16)")

// Valid reports a K that divides Partitions and is at most MaxShards.
func (k Shards) Valid() error {
	if k < 1 || k > MaxShards || Partitions%int(k) != 0 {
		return fmt.Errorf("%w: %d", ErrShardCount, int(k))
	}
	return nil
}

// OfPartition is the shard holding relay partition p.
func (k Shards) OfPartition(p int) int { return p % int(k) }

// Of is the shard holding group g's envelopes.
func (k Shards) Of(g protocol.GroupID) int { return k.OfPartition(Partition(g)) }

// Stream is the stream holding group g's envelopes.
func (k Shards) Stream(g protocol.GroupID) string { return AcceptedShard(k.Of(g)) }

// Subject is where relays store sender's envelopes in g.
func (k Shards) Subject(g protocol.GroupID, sender protocol.ClientID) string {
	return AcceptedShardPrefix(k.Of(g)) + AcceptedKey(g, sender)
}

// GroupFilter filters g's envelopes in its shard.
func (k Shards) GroupFilter(g protocol.GroupID) string {
	return AcceptedShardPrefix(k.Of(g)) + g.String() + ".*"
}

// All lists the shards' stream names.
func (k Shards) All() []string {
	out := make([]string, k)
	for i := range out {
		out[i] = AcceptedShard(i)
	}
	return out
}

// AcceptedShard is the name of shard i's stream.
func AcceptedShard(i int) string {
	if i == 0 {
		return AcceptedStream
	}
	return AcceptedStream + "_" + strconv.Itoa(i)
}

// AcceptedShardPrefix is the subject prefix of shard i's keys.
func AcceptedShardPrefix(i int) string {
	if i == 0 {
		return AcceptedPrefix
	}
	return "$KV." + Accepted + "_" + strconv.Itoa(i) + "."
}

// ParseShardSubject reads the shard, group and sender of a stored
// envelope's subject.
func ParseShardSubject(subject string) (shard int, g protocol.GroupID, sender protocol.ClientID, ok bool) {
	rest, ok := strings.CutPrefix(subject, "$KV."+Accepted)
	if !ok {
		return 0, g, sender, false
	}
	if n, key, cut := strings.Cut(strings.TrimPrefix(rest, "_"), "."); cut && strings.HasPrefix(rest, "_") {
		i, err := strconv.Atoi(n)
		if err != nil || i < 1 || i >= MaxShards || strconv.Itoa(i) != n {
			return 0, g, sender, false
		}
		shard, rest = i, key
	} else if rest, ok = strings.CutPrefix(rest, "."); !ok {
		return 0, g, sender, false
	}
	g, sender, ok = ParseAcceptedKey(rest)
	return shard, g, sender, ok
}

// LoadShards reads K from shard 0's metadata, waiting (as BindStream)
// until the keyserver has created it. A shard 0 without the key is the
// stream of a version before sharding: K = 1.
func LoadShards(ctx context.Context, js jetstream.JetStream) (Shards, error) {
	s, err := BindStream(ctx, js, AcceptedShard(0))
	if err != nil {
		return 0, err
	}
	return shardsOf(s.CachedInfo().Config)
}

func shardsOf(cfg jetstream.StreamConfig) (Shards, error) {
	v, ok := cfg.Metadata[MetaShards]
	if !ok {
		return 1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("streams: %s: metadata %s=%q: %w", cfg.Name, MetaShards, v, ErrShardCount)
	}
	k := Shards(n)
	return k, k.Valid()
}

// The live feeds: every stored envelope and bundle is republished by its
// stream's leader on a core NATS subject (RePublish), which gateways
// subscribe to for exactly the groups and members they serve, so that
// NATS routes each message only to the gateways interested in it. The
// republished message carries the stream's headers Nats-Stream,
// Nats-Subject, Nats-Sequence, Nats-Time-Stamp and Nats-Last-Sequence
// (the previous sequence of the same subject: a gap shows).
const (
	LivePrefix       = "comm.live."
	LiveMsgPrefix    = LivePrefix + "msg."    // comm.live.msg.<group>.<sender>
	LiveBundlePrefix = LivePrefix + "bundle." // comm.live.bundle.<member>.<group>
	AllLive          = LivePrefix + ">"
)

// LeaderElectedPrefix starts the subject of JetStream's advisory that a
// stream has a new leader (followed by the stream's name), published in
// the stream's account. A republish is sent by the leader as it applies
// a message: one the old leader stored but did not republish, as it was
// cut off or frozen, shows no gap until the next message of its subject,
// so the gateways check their groups of the stream at each election.
const LeaderElectedPrefix = "$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED."

// LiveSubject is the live subject of sender's envelopes in group g.
func LiveSubject(g protocol.GroupID, sender protocol.ClientID) string {
	return LiveMsgPrefix + g.String() + "." + sender.String()
}

// LiveGroup is the live subject filter of group g's envelopes.
func LiveGroup(g protocol.GroupID) string { return LiveMsgPrefix + g.String() + ".*" }

// LiveMemberBundles is the live subject filter of member's bundles.
func LiveMemberBundles(member protocol.ClientID) string {
	return LiveBundlePrefix + member.String() + ".*"
}

// Headers JetStream sets on a republished message.
const (
	HeaderNatsStream       = "Nats-Stream"
	HeaderNatsSubject      = "Nats-Subject"
	HeaderNatsSequence     = "Nats-Sequence"
	HeaderNatsTimeStamp    = "Nats-Time-Stamp"
	HeaderNatsLastSequence = "Nats-Last-Sequence"
)

// ErrShardsFixed means a K was asked for that is not the deployment's.
var ErrShardsFixed = errors.New("streams: the number of accepted-message shards is fixed when a deployment is created")

// ShardsChangedError refuses a K that differs from the existing
// deployment's: each (group, sender)'s last stored envelope is the record
// of its counters, and must stay on the shard its group maps to.
type ShardsChangedError struct {
	Existing, Asked Shards
}

func (e *ShardsChangedError) Error() string {
	return fmt.Sprintf("streams: the accepted messages are sharded over %d streams and %d were asked for; "+
		"the number is fixed when a deployment is created (docs/SCALING.md, \"Changing the number of shards\"): "+
		"leave it unset (0) to keep %d", e.Existing, e.Asked, e.Existing)
}

func (e *ShardsChangedError) Unwrap() error { return ErrShardsFixed }

// ShardCount is the K a deployment runs with: the existing one's, read
// from shard 0 (a stream from before sharding: 1), or, for a new
// deployment, asked (DefaultShards if 0). An asked K that differs from
// the existing one is a *ShardsChangedError.
func ShardCount(ctx context.Context, js jetstream.JetStream, asked Shards) (Shards, error) {
	if asked != 0 {
		if err := asked.Valid(); err != nil {
			return 0, err
		}
	}
	s, err := js.Stream(ctx, AcceptedShard(0))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if asked == 0 {
			return DefaultShards, nil
		}
		return asked, nil
	}
	if err != nil {
		return 0, fmt.Errorf("streams: %s: %w", AcceptedShard(0), err)
	}
	existing, err := shardsOf(s.CachedInfo().Config)
	if err != nil {
		return 0, err
	}
	if asked != 0 && asked != existing {
		return 0, &ShardsChangedError{Existing: existing, Asked: asked}
	}
	return existing, nil
}
