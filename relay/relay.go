// Package relay decides, message by message, whether a group message is
// relayed. It never sees a key or a plaintext: it checks the clear
// metadata of each envelope against the event log's projection and the
// last accepted counter, and stores what it accepts for delivery.
//
// Acceptance rules (docs/PROTOCOL.md, "Relay acceptance"): the envelope's
// sender is the identity the gateway authenticated; the sender is
// registered, not revoked, and a member of the group's current epoch;
// the envelope is signed by its sender (checked before anything is
// read or written in the store: a gateway's word is a first filter, not
// the proof); the envelope's epoch is the current one, or the previous
// one while the sender has sent nothing newer and the group's grace lasts
// (grace.go: the clients' retirement rule, and Grace after the epoch
// change); its counter is fresh in the (group, sender)'s replay window
// (protocol/replay): never accepted, not below the window.
//
// Accepted envelopes live in K shards (streams.Shards: K read once at
// start from shard 0, KV_COMM_ACCEPTED), a group's on the shard of its
// partition, one subject per (group, sender), each message carrying the window once its counter was
// added. A relay stores an envelope by compare-and-swap on its subject's
// last sequence, so the stored message is also the record of its counter:
// one write, and no two relays can ever accept the same (group, sender,
// counter). There is no moment between storing and recording for a crash
// to fall into. A sender that got no acknowledgement sends the same
// envelope again and is told "duplicate" if it was stored, even after
// later ones; the relays trim each subject to the retention period but
// keep its last message forever, so the window is never forgotten.
//
// Verdicts are truthful: "refused" only for what is never stored; what
// may yet be stored (a store's unknown outcome, lost races, a lease that
// may have lapsed) is "retry".
//
// Groups are spread over streams.Partitions partitions; each relay owns a
// fair share of them through leases in the COMM_RELAYS bucket, and
// processes a partition's messages on workers keyed by (group, sender), so
// one sender's messages are decided in order.
package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/internal/jsprobe"
	"github.com/commsec/communicator/streams"
)

// Config configures a relay.
type Config struct {
	KeyserverKey [32]byte // Pk_Ks: the events the relay trusts
	Streams      streams.Config
	// Grace is how long after an epoch change the previous epoch may still
	// be accepted (default 30 s): messages sealed just before a rekey. It
	// only shortens the grace of PROTOCOL.md §8.1 rule 4, which ends by
	// message count as the clients' does (grace.go).
	Grace time.Duration
	// Workers decide messages in parallel, each (group, sender) always on
	// the same worker (default 256).
	Workers int
	// EpochWait bounds the wait for the event log when a message names an
	// epoch the relay has not seen yet (default 3 s): the message waits off
	// the workers, then is refused if the relay has the whole log, or the
	// sender is told to retry (epochwait.go).
	EpochWait time.Duration
	// ID names this relay in leases and logs (default random).
	ID  string
	Log zerolog.Logger
	Now func() time.Time
	// Metrics receives the relay's counters and gauges (nil: a private
	// registry, for tests). It must not hold another relay's.
	Metrics prometheus.Registerer

	// FaultAfterStore is for fault-injection tests: it runs between
	// storing an envelope and replying, and an error stops the decision
	// there, with no reply, as a crash would.
	FaultAfterStore func() error
	// TrimInterval is how often envelopes older than Streams.Retention are
	// removed (default a tenth of the retention, at most 10 minutes).
	TrimInterval time.Duration
	// Probe tunes the JetStream probe of the relay's NATS connection,
	// which moves it off a node that cannot reach JetStream (package
	// jsprobe); the zero value has the defaults. Its stream, log and
	// metrics are the relay's.
	Probe jsprobe.Config
}

func (c *Config) fill() error {
	if c.KeyserverKey == ([32]byte{}) {
		return errors.New("relay: no keyserver public key configured")
	}
	if c.Grace <= 0 {
		c.Grace = 30 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 256
	}
	if c.EpochWait <= 0 {
		c.EpochWait = 3 * time.Second
	}
	if strings.ContainsAny(c.ID, ".*> ") {
		return fmt.Errorf("relay: id %q: no '.', '*', '>' or spaces (it is a key in the lease bucket)", c.ID)
	}
	if c.ID == "" {
		var b [6]byte
		rand.Read(b[:])
		c.ID = "relay-" + hex.EncodeToString(b[:])
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.TrimInterval <= 0 {
		retention := c.Streams.Retention
		if retention <= 0 {
			retention = streams.DefaultRetention
		}
		c.TrimInterval = max(min(retention/10, 10*time.Minute), time.Second)
	}
	return nil
}

// Relay is a running relay.
type Relay struct {
	cfg         Config
	log         zerolog.Logger
	nc          *nats.Conn
	js          jetstream.JetStream
	proj        *events.Projection
	events      *events.Store
	room        *waitRoom
	grace       *graceBook
	accepted    *accepted
	stopJanitor func()
	parts       *partitions
	workers     []chan *job
	gate        sync.RWMutex // dispatches hold it to read; Close, to set closed
	closed      bool
	probe       *jsprobe.Probe
	wg          sync.WaitGroup
	stop        []func()
	closeOnce   sync.Once
	Metrics     *Metrics
}

// Start loads the event log, opens the buckets and streams, starts the
// workers and begins claiming partitions.
func Start(ctx context.Context, nc *nats.Conn, cfg Config) (*Relay, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	r := &Relay{cfg: cfg, nc: nc, log: cfg.Log.With().Str("component", "relay").Str("relay", cfg.ID).Logger(), Metrics: newMetrics(cfg.Metrics),
		room: newWaitRoom()}
	if err := r.startProbe(); err != nil {
		return nil, err
	}
	if err := r.open(ctx); err != nil {
		r.Close()
		return nil, err
	}
	r.startWorkers()
	r.stop = append(r.stop, r.runWaitRoom())
	if err := startPartitions(ctx, r); err != nil {
		r.Close()
		return nil, err
	}
	r.stopJanitor = r.runJanitor(r.cfg.TrimInterval)
	return r, nil
}

// startProbe watches JetStream through the relay's connection from the
// start, so that a relay started on a cut-off node leaves it too.
func (r *Relay) startProbe() error {
	pc := r.cfg.Probe
	pc.Stream, pc.Log, pc.Metrics, pc.Prefix = streams.Events, r.log, r.Metrics.reg, "comm_relay"
	p, err := jsprobe.Start(r.nc, pc)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	r.probe = p
	return nil
}

// JetStream is the probe of the relay's NATS connection: its Ready is nil
// while the relay reaches JetStream.
func (r *Relay) JetStream() *jsprobe.Probe { return r.probe }

func (r *Relay) open(ctx context.Context) error {
	js, err := jetstream.New(r.nc)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	r.js = js
	store, err := events.Bind(ctx, js)
	if err != nil {
		return err
	}
	r.events = store
	if r.proj, err = events.Load(ctx, store, r.cfg.KeyserverKey, nil, r.refusedEvent); err != nil {
		return err
	}
	r.proj.Read(func(s *fold.State) { r.grace = newGraceBook(s) })
	r.Metrics.registerState(r.proj, r.room)
	stop, err := events.Follow(context.Background(), store, r.proj, r.eventApplied, r.refusedEvent)
	if err != nil {
		return err
	}
	r.stop = append(r.stop, stop)
	return r.openShards(ctx)
}

// openShards reads K once, from shard 0 (it waits for the keyserver to
// create the streams), and binds every shard: K is fixed for the life of
// a deployment, so a relay never reads it again.
func (r *Relay) openShards(ctx context.Context) error {
	k, err := streams.LoadShards(ctx, r.js)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	shards := make([]jetstream.Stream, k)
	for i, name := range k.All() {
		if shards[i], err = streams.BindStream(ctx, r.js, name); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
	}
	r.accepted = newAccepted(r.js, k, shards, r.Metrics.storeTimes(k), r.Metrics.forgedRecords)
	r.log.Info().Int("shards", int(k)).Msg("accepted messages sharded")
	return nil
}

func (r *Relay) refusedEvent(err error) {
	r.Metrics.refusedEvents.Inc()
	r.log.Error().Err(err).Msg("event refused")
}

// Close stops claiming and releases the partitions, then stops the
// workers. It may be called more than once.
func (r *Relay) Close() { r.closeOnce.Do(r.close) }

func (r *Relay) close() {
	if r.stopJanitor != nil {
		r.stopJanitor()
	}
	if r.parts != nil {
		r.parts.close()
	}
	// The partitions' subscriptions are drained, but a callback may still
	// be handing a message over: wait for those, then close the workers.
	r.gate.Lock()
	r.closed = true
	r.gate.Unlock()
	for _, w := range r.workers {
		close(w)
	}
	r.workers = nil
	r.wg.Wait()
	for _, stop := range r.stop {
		stop()
	}
	r.stop = nil
	for _, j := range r.room.drain() {
		r.answer(j, Retry, streams.ReasonRelayBusy)
	}
	if r.probe != nil {
		r.probe.Close() // last: it may still move the connection the partitions are released through
	}
}

// Owned lists the partitions this relay owns now.
func (r *Relay) Owned() []int { return r.parts.owned() }

// ID is the relay's name in leases and logs.
func (r *Relay) ID() string { return r.cfg.ID }

// Projection exposes the relay's view of the event log (read only).
func (r *Relay) Projection() *events.Projection { return r.proj }
