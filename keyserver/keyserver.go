// Package keyserver is the Communicator's authority on who may talk to
// whom. It turns validated commands into signed events (package events),
// opens a new epoch with a fresh group key on every membership change,
// wraps that key to every member as a signed bundle, and publishes the
// bundles where gateways serve them.
//
// Its state is the projection of the event log, rebuilt by replay at
// start-up. While an epoch's bundles are being published, its group key
// is also kept in escrow (escrow.go): wrapped to a key-wrap key of the
// keyserver's own, in its private bucket, deleted once every member's
// bundle is published. A restarted keyserver completes an epoch whose
// bundles a crash left unpublished from its escrow, with the same key;
// without a usable escrow it rekeys the group.
//
// It answers the admin API (serve.go) for operators: each signed request
// is recorded by its nonce, with its outcome (requests.go), so that a
// retry of the same bytes gets the first outcome and runs nothing twice
// (retry.go).
package keyserver

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/keyserver/admin"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

// Config configures a keyserver.
type Config struct {
	Key       *keys.SigningKey // Sk_Ks
	Operators [][32]byte       // public keys allowed to use the admin API
	Streams   streams.Config
	Log       zerolog.Logger
	Now       func() time.Time // the clock (time.Now if nil)
	// PolicyInterval is how often age-based rekey policies are checked
	// (default 5 s).
	PolicyInterval time.Duration
	// Workers wrap group keys in parallel (default GOMAXPROCS).
	Workers int
	// RequestWindow bounds the clock skew of admin requests (default 5 min).
	RequestWindow time.Duration
	// Metrics receives the keyserver's counters and state gauges (nil: a
	// private registry, for tests).
	Metrics prometheus.Registerer
	// FaultDropBundle is for fault-injection tests: a bundle of an atomic
	// batch for which it returns true (given the batch's attempt, from 1,
	// and the bundle's sequence in the batch, from 1) is not sent, as if
	// lost on the way to the server.
	FaultDropBundle func(attempt, seq int) bool
	// FaultCrashAfterBundles is for fault-injection tests: given an epoch
	// about to be published, the number of its bundles published before
	// the keyserver stops as a crash would (publishing the epoch fails
	// after them, leaving it incomplete and its key in escrow); a negative
	// number, or one at least the number of members, is no fault.
	FaultCrashAfterBundles func(protocol.GroupID, protocol.Epoch) int
	// FaultHoldRequest is for fault-injection tests: it is called with
	// each admin request taken, before the request runs; a test blocks in
	// it to hold the request, as a slow keyserver would.
	FaultHoldRequest func(*admin.Request)
}

func (c *Config) fill() error {
	if c.Key == nil {
		return errors.New("keyserver: no keyserver key configured")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.PolicyInterval <= 0 {
		c.PolicyInterval = 5 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.RequestWindow <= 0 {
		c.RequestWindow = 5 * time.Minute
	}
	return nil
}

// Keyserver is a running keyserver.
type Keyserver struct {
	cfg      Config
	log      zerolog.Logger
	js       jetstream.JetStream
	store    *events.Store
	proj     *events.Projection
	writer   *events.Writer
	kv       jetstream.KeyValue
	stop     []func()
	mu       sync.Mutex // one command at a time: epochs and their bundles stay in order
	verifier *admin.Verifier
	requests *requests
	escrow   [32]byte       // the public half of the escrow key-wrap key
	shards   streams.Shards // K of the accepted envelopes, fixed when they were created
	Metrics  *Metrics
}

// Start opens the streams, rebuilds the state by replaying the log,
// follows the log, and completes any epoch whose bundles a crash left
// unpublished (from its escrow, else with a new epoch). The caller serves
// the admin API with Serve.
func Start(ctx context.Context, nc *nats.Conn, cfg Config) (*Keyserver, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	k := &Keyserver{cfg: cfg, log: cfg.Log.With().Str("component", "keyserver").Logger(), Metrics: newMetrics(cfg.Metrics),
		verifier: admin.NewVerifier(cfg.Operators, cfg.RequestWindow)}
	var err error
	if k.escrow, err = escrowPublic(cfg.Key); err != nil {
		return nil, err
	}
	if err := k.open(ctx, nc); err != nil {
		return nil, err
	}
	if err := k.load(ctx); err != nil {
		k.Close()
		return nil, err
	}
	if err := k.recover(ctx); err != nil {
		k.Close()
		return nil, err
	}
	k.stop = append(k.stop, k.runPolicies())
	return k, nil
}

func (k *Keyserver) open(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("keyserver: %w", err)
	}
	k.js = js
	if k.store, err = events.OpenStore(ctx, js, events.StoreConfig{Replicas: k.cfg.Streams.Replicas}); err != nil {
		return err
	}
	if err := k.ensureStreams(ctx); err != nil {
		return err
	}
	k.requests = &requests{js: js}
	if k.requests.stream, err = js.Stream(ctx, streams.AdminRequests); err != nil {
		return fmt.Errorf("keyserver: %w", err)
	}
	k.kv, err = streams.BindKV(ctx, js, streams.KeyserverKV)
	return err
}

func (k *Keyserver) load(ctx context.Context) error {
	start := time.Now()
	p, err := events.Load(ctx, k.store, k.cfg.Key.Public(), nil, k.refused)
	if err != nil {
		return err
	}
	k.proj = p
	k.Metrics.registerState(p)
	k.writer = events.NewWriter(k.store, p, k.cfg.Key, k.cfg.Now)
	stop, err := events.Follow(context.Background(), k.store, p, nil, k.refused)
	if err != nil {
		return err
	}
	k.stop = append(k.stop, stop)
	var clients, groups int
	p.Read(func(s *fold.State) { clients, groups = len(s.Clients), len(s.Groups) })
	k.log.Info().Uint64("events", p.LastSeq()).Int("clients", clients).Int("groups", groups).
		Dur("took", time.Since(start)).Msg("state rebuilt by replay")
	if p.LastSeq() > 0 {
		go k.checkpoint()
	}
	return nil
}

// checkpoint signs the replayed state's position, so that the next start
// (of any service) checks only the signatures of the events after it.
func (k *Keyserver) checkpoint() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k.writer.Checkpoint(ctx); err != nil {
		k.log.Warn().Err(err).Msg("no checkpoint after the replay")
	}
}

// refused logs an event the projection refused: a forged or corrupt log.
func (k *Keyserver) refused(err error) {
	k.Metrics.refusedEvents.Inc()
	k.log.Error().Err(err).Msg("event refused")
}

// Close stops following the log and the policy loop.
func (k *Keyserver) Close() {
	for _, stop := range k.stop {
		stop()
	}
	k.stop = nil
}

// Projection exposes the keyserver's view of the log (read only).
func (k *Keyserver) Projection() *events.Projection { return k.proj }
