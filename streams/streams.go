// Package streams names the JetStream streams, subjects and key-value
// buckets the Communicator shares between its services, and configures
// them. The event log's stream belongs to package events.
//
//	comm.events.<aggregate>          COMM_EVENTS    keyserver → everyone (package events)
//	comm.bundles.<member>.<group>    COMM_BUNDLES   keyserver → gateways: signed, wrapped group keys
//	comm.in.<partition>              (request/reply) gateways → the relay owning the partition
//	$KV.COMM_ACCEPTED.<group>.<sender>  KV bucket   relays → gateways: accepted envelopes, stored by
//	                                                compare-and-swap; the last one of each (group,
//	                                                sender) is its last accepted counter
//	$KV.COMM_RELAYS.*                KV bucket      relays: presence and partition leases
//	$KV.COMM_CURSORS.<client>        KV bucket      gateways: each client's delivery cursor
//	comm.admin.>                     (request/reply) ksctl → keyserver
//
// Tokens are lowercase hex ids (protocol.GroupID.String, ClientID.String).
// Groups are spread over Partitions by the first four bytes of their
// (random) id; each partition has one owning relay at a time.
package streams

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/protocol"
)

// Stream and bucket names.
const (
	Bundles  = "COMM_BUNDLES"
	Accepted = "COMM_ACCEPTED" // a key-value bucket: its stream is AcceptedStream
	Relays   = "COMM_RELAYS"
	Cursors  = "COMM_CURSORS"
	// KeyserverKV holds the keyserver's bookkeeping (which epoch's bundles
	// are completely published).
	KeyserverKV = "COMM_KEYSERVER"
)

// Message headers.
const (
	HeaderEpoch  = "Comm-Epoch"  // on accepted messages: the envelope's epoch
	HeaderSender = "Comm-Sender" // on inbound messages: the authenticated sender (hex)
	HeaderStatus = "Comm-Status" // on relay replies: accepted, duplicate or refused
	HeaderReason = "Comm-Reason" // on relay replies: why a message was refused (for logs and metrics)
)

// Partitions is the number of relay partitions. Every gateway and relay
// must agree on it; changing it needs all of them restarted together.
const Partitions = 64

// Partition is the relay partition of a group.
func Partition(g protocol.GroupID) int {
	return int(binary.BigEndian.Uint32(g[:4]) % Partitions)
}

// InboundSubject is where gateways send the envelopes clients send to g.
func InboundSubject(g protocol.GroupID) string { return PartitionSubject(Partition(g)) }

// PartitionSubject is the inbound subject of relay partition p.
func PartitionSubject(p int) string { return "comm.in." + strconv.Itoa(p) }

// Defaults.
const (
	DefaultRetention     = 7 * 24 * time.Hour
	DefaultBundleHistory = 8
	DefaultLeaseTTL      = 5 * time.Second
)

// Config sizes the shared streams.
type Config struct {
	Replicas      int           // 1 on one machine, 3 on a cluster
	Retention     time.Duration // how long messages and bundles are kept for offline clients
	BundleHistory int           // bundles kept per (group, member): the epochs an offline client can catch up on
	// LeaseTTL is how long a dead relay's partitions stay unowned (the
	// COMM_RELAYS bucket's TTL; relays renew every third of it).
	LeaseTTL time.Duration
}

func (c Config) filled() Config {
	c.Replicas = max(c.Replicas, 1)
	if c.Retention <= 0 {
		c.Retention = DefaultRetention
	}
	if c.BundleHistory <= 0 {
		c.BundleHistory = DefaultBundleHistory
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	return c
}

// BundleSubject is where the keyserver publishes member's bundles of g.
// The member comes first so that a gateway finds all of one member's
// bundles under one prefix.
func BundleSubject(g protocol.GroupID, member protocol.ClientID) string {
	return "comm.bundles." + member.String() + "." + g.String()
}

// MemberBundles filters every bundle of one member.
func MemberBundles(member protocol.ClientID) string { return "comm.bundles." + member.String() + ".*" }

// GroupBundles filters every bundle of one group.
func GroupBundles(g protocol.GroupID) string { return "comm.bundles.*." + g.String() }

// AllBundles filters every bundle.
const AllBundles = "comm.bundles.*.*"

// The accepted envelopes' stream and subjects.
const (
	AcceptedStream = "KV_" + Accepted
	AcceptedPrefix = "$KV." + Accepted + "."
	AllAccepted    = AcceptedPrefix + "*.*"
)

// AcceptedKey is the COMM_ACCEPTED key of (g, sender).
func AcceptedKey(g protocol.GroupID, sender protocol.ClientID) string {
	return g.String() + "." + sender.String()
}

// AcceptedSubject is where relays store the envelopes of sender in g.
func AcceptedSubject(g protocol.GroupID, sender protocol.ClientID) string {
	return AcceptedPrefix + AcceptedKey(g, sender)
}

// GroupAccepted filters the accepted envelopes of g.
func GroupAccepted(g protocol.GroupID) string { return AcceptedPrefix + g.String() + ".*" }

// ParseAccepted reads the group and sender of an accepted envelope's subject.
func ParseAccepted(subject string) (protocol.GroupID, protocol.ClientID, bool) {
	rest, ok := strings.CutPrefix(subject, AcceptedPrefix)
	g, s, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return protocol.GroupID{}, protocol.ClientID{}, false
	}
	gid, err := protocol.ParseGroupID(g)
	sid, err2 := protocol.ParseClientID(s)
	return gid, sid, err == nil && err2 == nil
}

// BundlesConfig keeps the last BundleHistory bundles per (group, member)
// for the retention period.
func BundlesConfig(c Config) jetstream.StreamConfig {
	c = c.filled()
	return jetstream.StreamConfig{
		Name:              Bundles,
		Description:       "Communicator key bundles: group keys wrapped to each member, signed by the keyserver",
		Subjects:          []string{AllBundles},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: int64(c.BundleHistory),
		MaxAge:            c.Retention,
		Replicas:          c.Replicas,
		AllowDirect:       false, // reads go to the leader: a replica that lags must not hide a bundle or a counter
		// The keyserver publishes an epoch's bundles in atomic batches,
		// which the server stores with one fsync per batch.
		AllowAtomicPublish: true,
	}
}

// AcceptedConfig is the COMM_ACCEPTED key-value bucket, configured as a
// stream: one key per (group, sender) whose values are that sender's
// accepted envelopes, every one kept (not only the last, as a plain bucket
// would) so that gateways can deliver them. A relay stores an envelope by
// compare-and-swap on its key's last revision: the stored message is the
// counter's record, one write. Nothing expires by age: the relays trim
// each key to the retention period but always keep its last value, the
// sender's last accepted counter, whose loss would let an old message
// through.
func AcceptedConfig(c Config) jetstream.StreamConfig {
	c = c.filled()
	return jetstream.StreamConfig{
		Name:              AcceptedStream,
		Description:       "Communicator accepted group messages (end-to-end encrypted envelopes), by (group, sender)",
		Subjects:          []string{AcceptedPrefix + ">"},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: math.MaxInt32, // a key-value bucket needs a history limit; this one keeps all
		Discard:           jetstream.DiscardNew,
		AllowRollup:       true,
		DenyDelete:        true,
		Replicas:          c.Replicas,
		AllowDirect:       false, // reads go to the leader: a replica that lags must not hide a bundle or a counter
	}
}

// RelaysConfig holds relay presence and partition leases; entries expire
// after LeaseTTL unless renewed.
func RelaysConfig(c Config) jetstream.KeyValueConfig {
	c = c.filled()
	return jetstream.KeyValueConfig{
		Bucket:      Relays,
		Description: "Communicator relays: presence and partition leases",
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		TTL:         c.LeaseTTL,
	}
}

// CursorsConfig holds each client's delivery cursor.
func CursorsConfig(c Config) jetstream.KeyValueConfig {
	c = c.filled()
	return jetstream.KeyValueConfig{
		Bucket:      Cursors,
		Description: "Communicator gateways: delivery cursor per client",
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
	}
}

// KeyserverKVConfig is the keyserver's bookkeeping bucket.
func KeyserverKVConfig(c Config) jetstream.KeyValueConfig {
	c = c.filled()
	return jetstream.KeyValueConfig{
		Bucket:      KeyserverKV,
		Description: "Communicator keyserver bookkeeping",
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
	}
}

// EnsureStream creates or updates a stream.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("streams: %s: %w", cfg.Name, err)
	}
	return s, nil
}

// EnsureKV creates or updates a key-value bucket.
func EnsureKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("streams: bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// EnsureAll creates or updates every shared stream and bucket. Only the
// keyserver does this: with least-privilege credentials, relays and
// gateways may not change stream configuration, they bind.
func EnsureAll(ctx context.Context, js jetstream.JetStream, c Config) error {
	for _, sc := range []jetstream.StreamConfig{BundlesConfig(c), AcceptedConfig(c)} {
		s, err := EnsureStream(ctx, js, sc)
		if err != nil {
			return err
		}
		if sc.AllowAtomicPublish && !s.CachedInfo().Config.AllowAtomicPublish {
			// A server before 2.12 ignores the setting, and would store
			// a batch's bundles one by one without acknowledging them.
			return fmt.Errorf("streams: %s: the NATS server does not support atomic batch publish (nats-server 2.12 or later needed)", sc.Name)
		}
	}
	for _, kc := range []jetstream.KeyValueConfig{RelaysConfig(c), CursorsConfig(c), KeyserverKVConfig(c)} {
		if _, err := EnsureKV(ctx, js, kc); err != nil {
			return err
		}
	}
	return nil
}

// bindPoll is how often Bind* look again for a missing stream.
const bindPoll = 250 * time.Millisecond

// BindStream waits until the stream exists (the keyserver creates it) and
// returns it; it gives up when ctx ends.
func BindStream(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	for {
		s, err := js.Stream(ctx, name)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("streams: %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("streams: %s does not exist (is the keyserver running?): %w", name, ctx.Err())
		case <-time.After(bindPoll):
		}
	}
}

// BindKV waits until the bucket exists (the keyserver creates it) and
// returns it; it gives up when ctx ends.
func BindKV(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	for {
		kv, err := js.KeyValue(ctx, bucket)
		if err == nil {
			return kv, nil
		}
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("streams: bucket %s: %w", bucket, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("streams: bucket %s does not exist (is the keyserver running?): %w", bucket, ctx.Err())
		case <-time.After(bindPoll):
		}
	}
}
