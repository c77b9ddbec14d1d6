// Package streams is the one typed contract of the Communicator on NATS:
// every stream, key-value bucket, subject and header its services share,
// the parsers of the subjects that carry ids, the relay's verdicts and
// reasons, and the streams' configurations.
//
//	comm.events.<aggregate>          COMM_EVENTS      keyserver → everyone: the signed event log
//	comm.event-checkpoints           COMM_EVENT_CHECKPOINTS  keyserver → everyone: signed log hashes
//	comm.bundles.<member>.<group>    COMM_BUNDLES     keyserver → gateways: signed, wrapped group keys
//	comm.admin-requests.<nonce>      COMM_ADMIN_REQUESTS  keyserver: the admin requests it took
//	comm.in.<partition>              (request/reply)  gateways → the relay owning the partition
//	$KV.COMM_ACCEPTED.<group>.<sender>  KV bucket     relays → gateways: accepted envelopes, stored by
//	                                                  compare-and-swap; the last one of each (group,
//	                                                  sender) is its last accepted counter. Shard 0
//	                                                  of K; shard i > 0 is $KV.COMM_ACCEPTED_<i>.…
//	                                                  (shards.go)
//	$KV.COMM_RELAYS.*                KV bucket        relays: presence and partition leases
//	$KV.COMM_CURSORS.<client>        KV bucket        gateways: each client's delivery cursor, one sequence per shard
//	$KV.COMM_KEYSERVER.*             KV bucket        keyserver: its bookkeeping
//	comm.admin.<op>                  (request/reply)  ksctl → keyserver
//
// Tokens are lowercase hex ids (protocol.GroupID.String, ClientID.String).
// Groups are spread over Partitions by the first four bytes of their
// (random) id; each partition has one owning relay at a time. Package
// natsauth turns these names into each role's NATS account and
// permissions.
package streams

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

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
	// Shards is K, the number of streams the accepted envelopes are
	// sharded over (shards.go); fixed when they are created. 0: the
	// existing deployment's K, or DefaultShards for a new one.
	Shards Shards
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
		RePublish:          &jetstream.RePublish{Source: AllBundles, Destination: LiveBundlePrefix + "{{wildcard(1)}}.{{wildcard(2)}}"},
	}
}

// AcceptedConfig is shard i of K of the accepted envelopes (shards.go),
// a key-value bucket configured as a stream: one key per (group, sender)
// whose values are that sender's accepted envelopes, every one kept (not
// only the last, as a plain bucket would) so that gateways can deliver
// them. A relay stores an envelope by compare-and-swap on its key's last
// revision: the stored message is the counter's record, one write.
// Nothing expires by age: the relays trim each key to the retention
// period but always keep its last value, the sender's last accepted
// counter, whose loss would let an old message through. The leader
// republishes every stored envelope on its live subject (LiveGroup).
func AcceptedConfig(c Config, k Shards, i int) jetstream.StreamConfig {
	c = c.filled()
	prefix := AcceptedShardPrefix(i)
	return jetstream.StreamConfig{
		Name:              AcceptedShard(i),
		Description:       fmt.Sprintf("Communicator accepted group messages (end-to-end encrypted envelopes), by (group, sender): shard %d of %d", i, k),
		Subjects:          []string{prefix + ">"},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: math.MaxInt32, // a key-value bucket needs a history limit; this one keeps all
		Discard:           jetstream.DiscardNew,
		AllowRollup:       true,
		DenyDelete:        true,
		Replicas:          c.Replicas,
		AllowDirect:       false, // reads go to the leader: a replica that lags must not hide a bundle or a counter
		RePublish:         &jetstream.RePublish{Source: prefix + "*.*", Destination: LiveMsgPrefix + "{{wildcard(1)}}.{{wildcard(2)}}"},
		Metadata:          map[string]string{MetaShards: strconv.Itoa(int(k)), MetaShard: strconv.Itoa(i)},
	}
}

// AdminRequestsWindow is how long the record of an admin request is kept:
// far past the keyserver's clock window for requests (five minutes by
// default), after which the request's time refuses it anyway.
const AdminRequestsWindow = 24 * time.Hour

// AdminRequestsConfig records the admin requests the keyserver took, one
// subject per request nonce, written before the request runs and again
// with its outcome when it ends (two messages; four are kept): a request
// whose nonce has a record does not run again, across restarts and
// between keyserver instances; its retry is answered from the record.
func AdminRequestsConfig(c Config) jetstream.StreamConfig {
	c = c.filled()
	return jetstream.StreamConfig{
		Name:              AdminRequests,
		Description:       "Communicator keyserver: the admin requests taken, by nonce",
		Subjects:          []string{AllAdminRequests},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		MaxAge:            AdminRequestsWindow,
		MaxMsgsPerSubject: 4,
		MaxMsgSize:        64 << 10,
		Discard:           jetstream.DiscardOld,
		DenyDelete:        true,
		Replicas:          c.Replicas,
		AllowDirect:       false,
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

// CursorsConfig holds each client's delivery cursor. Gateways write a
// second's cursors as one atomic batch (EnsureAll turns AllowAtomic on
// for its stream, which a bucket's configuration cannot say).
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
	s, err := whilePlacing(ctx, func() (jetstream.Stream, error) { return js.CreateOrUpdateStream(ctx, cfg) })
	if err != nil {
		return nil, fmt.Errorf("streams: %s: %w", cfg.Name, err)
	}
	return s, nil
}

// EnsureKV creates or updates a key-value bucket.
func EnsureKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := whilePlacing(ctx, func() (jetstream.KeyValue, error) { return js.CreateOrUpdateKeyValue(ctx, cfg) })
	if err != nil {
		return nil, fmt.Errorf("streams: bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// errCodeNoPeers is JetStream's "no suitable peers for placement": a
// cluster that has just started may know fewer peers than the replicas
// asked for, or count one offline that is coming back.
const errCodeNoPeers jetstream.ErrorCode = 10005

// placementWait bounds how long whilePlacing asks again.
const placementWait = 30 * time.Second

// whilePlacing runs f, again every quarter second for up to placementWait
// while the cluster has no peers for a stream's replicas.
func whilePlacing[T any](ctx context.Context, f func() (T, error)) (T, error) {
	deadline := time.Now().Add(placementWait)
	for {
		v, err := f()
		if err == nil || !IsAPIError(err, errCodeNoPeers) || time.Now().After(deadline) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(bindPoll):
		}
	}
}

// EnsureAll creates or updates every shared stream and bucket. Only the
// keyserver does this: with least-privilege credentials, relays and
// gateways may not change stream configuration, they bind.
//
// The accepted envelopes' K is the existing deployment's (ShardCount):
// a K asked for that differs from it is refused (*ShardsChangedError).
// Shard 0 is created or updated last, so that relays and gateways, which
// wait for it (LoadShards), find every shard there when they see it.
func EnsureAll(ctx context.Context, js jetstream.JetStream, c Config) error {
	k, err := ShardCount(ctx, js, c.Shards)
	if err != nil {
		return err
	}
	all := []jetstream.StreamConfig{BundlesConfig(c), AdminRequestsConfig(c)}
	for i := int(k) - 1; i >= 0; i-- {
		all = append(all, AcceptedConfig(c, k, i))
	}
	for _, sc := range all {
		s, err := EnsureStream(ctx, js, sc)
		if err != nil {
			return err
		}
		if sc.AllowAtomicPublish && !s.CachedInfo().Config.AllowAtomicPublish {
			// A server before 2.12 ignores the setting, and would store
			// a batch's bundles one by one without acknowledging them.
			return fmt.Errorf("streams: %s: the NATS server does not support atomic batch publish (nats-server 2.12 or later needed)", sc.Name)
		}
		if sc.RePublish != nil && s.CachedInfo().Config.RePublish == nil {
			return fmt.Errorf("streams: %s: the NATS server did not keep the stream's RePublish (the live feeds need it)", sc.Name)
		}
	}
	for _, kc := range []jetstream.KeyValueConfig{RelaysConfig(c), CursorsConfig(c), KeyserverKVConfig(c)} {
		if _, err := EnsureKV(ctx, js, kc); err != nil {
			return err
		}
	}
	// The gateways write their cursors, and the relays renew their
	// leases, in atomic batches.
	for _, bucket := range []string{Cursors, Relays} {
		if err := AllowAtomic(ctx, js, KVStream(bucket)); err != nil {
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
