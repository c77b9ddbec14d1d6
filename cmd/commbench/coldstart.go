package main

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/embeddednats"
	"github.com/commsec/communicator/internal/loadgen"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

// coldEnv is a NATS server of its own with an event log written as the
// keyserver writes it. It fsyncs every minute: the figure only reads the
// log, and a million fsynced writes would take many minutes to make.
type coldEnv struct {
	ns    *embeddednats.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	store *events.Store
	ks    *keys.SigningKey
}

// coldStart times a keyserver start (keyserver.Start: open the streams,
// replay the log, recover) on a log of n client registrations, beside a
// raw ordered consumer reading the same n messages. The first start
// finds no checkpoint and checks every aggregate head's signature; it
// then writes a checkpoint, as the keyserver does after its replay, and
// the rounds that follow start from it, each followed by a raw read.
func (r *runner) coldStart(ctx context.Context) error {
	env, err := r.newColdEnv(ctx)
	if err != nil {
		return err
	}
	defer env.close()
	n := r.p.coldEvents
	if err := env.build(ctx, n, r.say); err != nil {
		return err
	}
	first, err := env.start(ctx, n, true)
	if err != nil {
		return err
	}
	r.say("first start, no checkpoint: %v", first.Round(time.Millisecond))
	var starts, raws []time.Duration
	for round := range r.p.coldRounds {
		t, err := env.start(ctx, n, false)
		if err != nil {
			return err
		}
		raw, err := env.rawReplay(ctx, n)
		if err != nil {
			return err
		}
		starts, raws = append(starts, t), append(raws, raw)
		r.say("round %d: start %v, raw read %v", round+1, t.Round(time.Millisecond), raw.Round(time.Millisecond))
	}
	r.reportColdStart(n, first, median(starts), median(raws))
	return nil
}

func (r *runner) reportColdStart(n int, first, start, raw time.Duration) {
	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	bound := fmt.Sprintf("%s events/s = %s raw ordered-consumer read", perSecNum(rate(raw)), secs(raw))
	r.add(newRow(fmt.Sprintf("keyserver cold start from %s events, with its checkpoint", count(n)),
		fmt.Sprintf("%s events/s = %s", perSecNum(rate(start)), secs(start)), bound, raw.Seconds()/start.Seconds(), atLeast(0.5)))
	r.add(newRow(fmt.Sprintf("keyserver first start from %s events, no checkpoint (every head's signature)", count(n)),
		fmt.Sprintf("%s events/s = %s", perSecNum(rate(first)), secs(first)), bound, raw.Seconds()/first.Seconds(), goal{}))
	r.note("coldstart: keyserver.Start on a log of %s client registrations (each its own aggregate), on a NATS server "+
		"of its own that fsyncs every minute (the figure only reads); median of %d rounds, each start followed by a raw read",
		count(n), r.p.coldRounds)
}

func perSecNum(x float64) string { return fmt.Sprintf("%.0f", x) }

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func (r *runner) newColdEnv(ctx context.Context) (*coldEnv, error) {
	ns, err := embeddednats.Start(embeddednats.Options{DataDir: filepath.Join(r.dir, "coldstart"), SyncInterval: time.Minute,
		Name: "commbench-coldstart"})
	if err != nil {
		return nil, err
	}
	env := &coldEnv{ns: ns}
	if err := env.open(ctx); err != nil {
		env.close()
		return nil, err
	}
	return env, nil
}

func (env *coldEnv) open(ctx context.Context) error {
	var err error
	if env.nc, err = env.ns.Connect(); err != nil {
		return err
	}
	if env.js, err = jetstream.New(env.nc, jetstream.WithPublishAsyncMaxPending(4096)); err != nil {
		return err
	}
	if env.store, err = events.OpenStore(ctx, env.js, events.StoreConfig{}); err != nil {
		return err
	}
	seed := [32]byte{0x63, 0x6f, 0x6c, 0x64}
	env.ks = keys.NewSigningKey(&seed)
	return nil
}

func (env *coldEnv) close() {
	if env.nc != nil {
		env.nc.Close()
	}
	env.ns.Shutdown()
}

// coldClient is the i-th synthetic client id; its key-wrap key is its
// id (the projection does not look inside keys).
func coldClient(i int) protocol.ClientID {
	var id protocol.ClientID
	id[0] = 0xc1
	binary.BigEndian.PutUint64(id[24:], uint64(i))
	return id
}

// signed is one record ready to publish.
type signed struct {
	aggregate string
	rec       record.Record
}

// build signs n registrations on every core and publishes them
// asynchronously, as Store.Append would (with its message id).
func (env *coldEnv) build(ctx context.Context, n int, say func(string, ...any)) error {
	t := time.Now()
	recs := make(chan signed, 4096)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() { env.sign(ctx, &next, n, recs) })
	}
	go func() { wg.Wait(); close(recs) }()
	var published atomic.Int64
	stop := progressLine(say, func() string {
		return fmt.Sprintf("event log: %s of %s written", count(int(published.Load())), count(n))
	})
	err := env.publish(ctx, recs, &published)
	stop()
	if err != nil {
		return err
	}
	info, err := env.js.Stream(ctx, streams.Events)
	if err != nil {
		return err
	}
	st, err := info.Info(ctx)
	if err != nil {
		return err
	}
	if st.State.Msgs != uint64(n) {
		return fmt.Errorf("the event log holds %d events, want %d", st.State.Msgs, n)
	}
	say("wrote %s events in %v", count(n), time.Since(t).Round(time.Millisecond))
	return nil
}

// sign completes and signs registrations until n are taken.
func (env *coldEnv) sign(ctx context.Context, next *atomic.Int64, n int, out chan<- signed) {
	pub := env.ks.Public()
	for i := int(next.Add(1) - 1); i < n && ctx.Err() == nil; i = int(next.Add(1) - 1) {
		id := coldClient(i)
		e := record.NewClientRegistered(id, id, "")
		e.Seq, e.Time, e.Actor = 1, 1_700_000_000_000_000_000, pub
		rec, err := record.Sign(e, env.ks)
		if err != nil {
			panic(fmt.Sprintf("commbench: signing a registration: %v", err)) // a bug: the event is built here
		}
		out <- signed{e.Aggregate(), rec}
	}
}

func (env *coldEnv) publish(ctx context.Context, recs <-chan signed, published *atomic.Int64) error {
	for s := range recs {
		msg := nats.NewMsg(events.Subject(s.aggregate))
		msg.Data = s.rec
		h := s.rec.Hash()
		msg.Header.Set(jetstream.MsgIDHeader, hex.EncodeToString(h[:]))
		if _, err := env.js.PublishMsgAsync(msg); err != nil {
			return fmt.Errorf("publishing the event log: %w", err)
		}
		if published.Add(1)%2048 == 0 {
			if err := waitPublished(ctx, env.js); err != nil {
				return err
			}
		}
	}
	return waitPublished(ctx, env.js)
}

func waitPublished(ctx context.Context, js jetstream.JetStream) error {
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-time.After(time.Minute):
		return fmt.Errorf("publishing the event log: no acks within a minute")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// start times one keyserver.Start, checks it replayed n events and closes
// it; the first start waits for the checkpoint it writes after replay.
func (env *coldEnv) start(ctx context.Context, n int, first bool) (time.Duration, error) {
	runtime.GC()
	t := time.Now()
	k, err := keyserver.Start(ctx, env.nc, keyserver.Config{Key: env.ks, PolicyInterval: time.Hour})
	took := time.Since(t)
	if err != nil {
		return 0, err
	}
	defer k.Close()
	if got := k.Projection().LastSeq(); got != uint64(n) {
		return 0, fmt.Errorf("the keyserver replayed %d events, want %d", got, n)
	}
	if first {
		return took, env.waitCheckpoint(ctx)
	}
	return took, nil
}

func (env *coldEnv) waitCheckpoint(ctx context.Context) error {
	return loadgen.Poll(ctx, time.Minute, func() bool {
		st, err := env.js.Stream(ctx, streams.Checkpoints)
		if err != nil {
			return false
		}
		info, err := st.Info(ctx)
		return err == nil && info.State.Msgs > 0
	}, "no checkpoint after the first start")
}

// rawReplay reads n messages of the log with an ordered consumer,
// without decoding them: the bound of a replay.
func (env *coldEnv) rawReplay(ctx context.Context, n int) (time.Duration, error) {
	runtime.GC()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	t := time.Now()
	cons, err := env.js.OrderedConsumer(ctx, streams.Events, jetstream.OrderedConsumerConfig{FilterSubjects: []string{streams.AllEvents}})
	if err != nil {
		return 0, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		return 0, err
	}
	defer it.Stop()
	size := 0
	for range n {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return 0, fmt.Errorf("raw replay: %w", err)
		}
		size += len(msg.Data())
	}
	if size == 0 {
		return 0, fmt.Errorf("raw replay: empty messages")
	}
	return time.Since(t), nil
}

// progressLine prints what f says every second until stop is called.
func progressLine(say func(string, ...any), f func() string) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				say("%s", f())
			}
		}
	}()
	return func() { close(done); <-finished }
}
