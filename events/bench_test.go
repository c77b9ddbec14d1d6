package events_test

// Benchmarks of the event log beside their raw JetStream bounds, both
// measured on the same embedded server in the same run:
//
//	BenchmarkAppend, BenchmarkAppendFast: Writer.Append (check, sign,
//	  optimistic-concurrency publish, wait for the projection) against a
//	  synchronous js.Publish of a record-sized payload with an expected last
//	  subject sequence, on a fresh subject each time; fsync on every write,
//	  and every minute.
//	BenchmarkReplay: Load of a 100,000-event log (a cold start) against a
//	  raw ordered consumer reading the same messages without decoding them.
//	BenchmarkReplayGroups: the same with a log of groups whose members are
//	  added in batches and that are rekeyed many times.
//	TestReplayMillion: Load against the raw consumer on 1,000,000 events;
//	  it takes minutes and runs only with COMM_BENCH_1M=1.
//
// Each benchmark interleaves the two sides in windows (an iteration, or
// twenty appends), each subject window followed at once by its raw window,
// so that load from other processes and the swings of fsync latency fall
// on both. It reports the median window of each side as ns/<side> and
// <side>/s, "rate-vs-raw", the median over the window pairs of the
// subject's rate as a fraction of the raw one, and "mean-rate-vs-raw" from
// the totals. ns/op is suppressed: it would be the sum of both sides.

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/embeddednats"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

type startFunc func(testing.TB) (*embeddednats.Server, *nats.Conn)

// benchEnv is an embedded server with the event stream and a fixed
// keyserver key.
type benchEnv struct {
	ctx   context.Context
	nc    *nats.Conn
	js    jetstream.JetStream
	store *events.Store
	ks    *keys.SigningKey
}

func newBenchEnv(tb testing.TB, start startFunc) *benchEnv {
	tb.Helper()
	_, nc := start(tb)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		tb.Fatal(err)
	}
	ctx := tb.Context()
	store, err := events.OpenStore(ctx, js, events.StoreConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	seed := [32]byte{0x6b, 0x73}
	return &benchEnv{ctx: ctx, nc: nc, js: js, store: store, ks: keys.NewSigningKey(&seed)}
}

// benchClient is the i-th synthetic client id; its key-wrap key is its id
// (the projection does not look inside keys).
func benchClient(i int) protocol.ClientID {
	var id protocol.ClientID
	id[0] = 0xc1
	binary.BigEndian.PutUint64(id[24:], uint64(i))
	return id
}

func benchRegistration(i int) *record.Event {
	id := benchClient(i)
	return record.NewClientRegistered(id, id, "")
}

// windows accumulates the timing windows of the two sides, each of n
// events.
type windows struct {
	n             int
	subject, raw  []time.Duration
	ratios        []float64 // raw / subject, window by window
	tSub, tRawAll time.Duration
}

func (w *windows) add(subject, raw time.Duration) {
	w.subject = append(w.subject, subject)
	w.raw = append(w.raw, raw)
	w.ratios = append(w.ratios, raw.Seconds()/subject.Seconds())
	w.tSub += subject
	w.tRawAll += raw
}

func median[T cmp.Ordered](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func (w *windows) report(b *testing.B, subject, raw string) {
	perEvent := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(w.n) }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(perEvent(median(w.subject)), "ns/"+subject)
	b.ReportMetric(perEvent(median(w.raw)), "ns/"+raw)
	b.ReportMetric(1e9/perEvent(median(w.subject)), subject+"/s")
	b.ReportMetric(1e9/perEvent(median(w.raw)), raw+"/s")
	b.ReportMetric(median(w.ratios), "rate-vs-raw")
	b.ReportMetric(w.tRawAll.Seconds()/w.tSub.Seconds(), "mean-rate-vs-raw")
}

// BenchmarkAppend appends client registrations one at a time with fsync on
// every write (the embedded server's default).
func BenchmarkAppend(b *testing.B) { benchAppend(b, natstest.Open) }

// BenchmarkAppendFast is BenchmarkAppend with fsync every minute.
func BenchmarkAppendFast(b *testing.B) { benchAppend(b, natstest.OpenFast) }

func benchAppend(b *testing.B, start startFunc) {
	env := newBenchEnv(b, start)
	p, err := events.Load(env.ctx, env.store, env.ks.Public(), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	stop, err := events.Follow(env.ctx, env.store, p, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(stop)
	w := events.NewWriter(env.store, p, env.ks, nil)

	// The raw side: a stream of the same configuration and a payload of
	// the same size as a signed registration.
	cfg := events.StreamConfig(events.StoreConfig{})
	cfg.Name, cfg.Subjects = "BENCH_RAW", []string{"bench.raw.>"}
	if _, err := env.js.CreateStream(env.ctx, cfg); err != nil {
		b.Fatal(err)
	}
	sample, err := record.Sign(benchRegistration(-1), env.ks)
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, len(sample))

	// An iteration is a window of appendWindow appends and as many raw
	// publishes.
	const appendWindow = 20
	ws := windows{n: appendWindow}
	n := 0
	for b.Loop() {
		t0 := time.Now()
		for i := range appendWindow {
			if _, err := w.Append(env.ctx, benchRegistration(n+i)); err != nil {
				b.Fatal(err)
			}
		}
		t1 := time.Now()
		for i := range appendWindow {
			if _, err := env.js.Publish(env.ctx, "bench.raw."+strconv.Itoa(n+i), payload, jetstream.WithExpectLastSequencePerSubject(0)); err != nil {
				b.Fatal(err)
			}
		}
		ws.add(t1.Sub(t0), time.Since(t1))
		n += appendWindow
	}
	ws.report(b, "append", "raw-publish")
}

// benchLog writes a synthetic log the way the keyserver would: every
// event completed, chained to its aggregate's head and signed.
type benchLog struct {
	env   *benchEnv
	mu    sync.Mutex
	heads map[string]events.Head
	acks  []jetstream.PubAckFuture
	count int
}

func newBenchLog(env *benchEnv) *benchLog {
	return &benchLog{env: env, heads: map[string]events.Head{}}
}

// complete fills in what Writer.Append would.
func (l *benchLog) complete(e *record.Event, head events.Head) {
	pub := l.env.ks.Public()
	e.Seq, e.Prev, e.Time, e.Actor = head.Seq+1, head.Hash, 1_700_000_000_000_000_000, pub
}

// publish sends a signed record asynchronously, with the message id that
// Store.Append sets.
func (l *benchLog) publish(tb testing.TB, aggregate string, rec record.Record) {
	msg := nats.NewMsg(events.Subject(aggregate))
	msg.Data = rec
	h := rec.Hash()
	msg.Header.Set(jetstream.MsgIDHeader, hex.EncodeToString(h[:]))
	f, err := l.env.js.PublishMsgAsync(msg)
	if err != nil {
		tb.Fatal(err)
	}
	l.mu.Lock()
	l.acks = append(l.acks, f)
	l.count++
	l.mu.Unlock()
	if l.count%2048 == 0 { // stay well below the async window
		select {
		case <-l.env.js.PublishAsyncComplete():
		case <-l.env.ctx.Done():
			tb.Fatal(l.env.ctx.Err())
		}
	}
}

// add appends one event in order (events of one aggregate chain).
func (l *benchLog) add(tb testing.TB, e *record.Event) {
	l.complete(e, l.heads[e.Aggregate()])
	rec, err := record.Sign(e, l.env.ks)
	if err != nil {
		tb.Fatal(err)
	}
	l.publish(tb, e.Aggregate(), rec)
	l.heads[e.Aggregate()] = events.Head{Seq: e.Seq, Hash: rec.Hash()}
}

// registrations signs the registrations of clients [from, to) on every
// core (each is the first event of its own aggregate) and publishes them.
func (l *benchLog) registrations(tb testing.TB, from, to int) {
	recs := make(chan struct {
		agg string
		rec record.Record
	}, 4096)
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < to; i = int(next.Add(1) - 1) {
				e := benchRegistration(i)
				l.complete(e, events.Head{})
				rec, err := record.Sign(e, l.env.ks)
				if err != nil {
					panic(err)
				}
				recs <- struct {
					agg string
					rec record.Record
				}{e.Aggregate(), rec}
			}
		}()
	}
	go func() { wg.Wait(); close(recs) }()
	for r := range recs {
		l.publish(tb, r.agg, r.rec)
	}
}

// wait waits until JetStream has stored everything published.
func (l *benchLog) wait(tb testing.TB) {
	for _, f := range l.acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			tb.Fatal(err)
		case <-l.env.ctx.Done():
			tb.Fatal(l.env.ctx.Err())
		}
	}
	l.acks = nil
}

// groups adds groups of size members each (clients [0, groups*size) must
// be registered), adding members batch at a time, then rekeys each group
// rekeys times.
func (l *benchLog) groups(tb testing.TB, groups, size, batch, rekeys int) {
	for g := range groups {
		gid := protocol.GroupID{0x67, byte(g >> 8), byte(g)}
		l.add(tb, record.NewGroupCreated(gid, "group-"+strconv.Itoa(g), record.Policy{}))
		var members []protocol.ClientID
		epoch := protocol.Epoch(0)
		for i := 0; i < size; i += batch {
			var added []protocol.ClientID
			for j := i; j < min(i+batch, size); j++ {
				added = append(added, benchClient(g*size+j))
			}
			members = append(members, added...)
			epoch++
			l.add(tb, record.NewEpoch(record.MembersAdded, gid, epoch, added, bundle.MemberDigest(members), ""))
		}
		digest := bundle.MemberDigest(members)
		for range rekeys {
			epoch++
			l.add(tb, record.NewEpoch(record.GroupRekeyed, gid, epoch, nil, digest, "policy"))
		}
	}
}

// rawReplay reads n messages of the log with an ordered consumer, without
// decoding them: the bound of a replay.
func rawReplay(tb testing.TB, env *benchEnv, n int) {
	cons, err := env.js.OrderedConsumer(env.ctx, streams.Events, jetstream.OrderedConsumerConfig{FilterSubjects: []string{streams.AllEvents}})
	if err != nil {
		tb.Fatal(err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		tb.Fatal(err)
	}
	defer it.Stop()
	size := 0
	for range n {
		msg, err := it.Next(jetstream.NextContext(env.ctx))
		if err != nil {
			tb.Fatal(err)
		}
		size += len(msg.Data())
	}
	if size == 0 {
		tb.Fatal("empty messages")
	}
}

// load is a cold start: Load of the whole log, every event applied.
func load(tb testing.TB, env *benchEnv, n int) *events.Projection {
	var refused atomic.Int64
	p, err := events.Load(env.ctx, env.store, env.ks.Public(), nil, func(err error) {
		if refused.Add(1) == 1 {
			tb.Error(err)
		}
	})
	if err != nil {
		tb.Fatal(err)
	}
	if p.LastSeq() != uint64(n) || refused.Load() != 0 {
		tb.Fatalf("loaded %d events, %d refused; want %d", p.LastSeq(), refused.Load(), n)
	}
	return p
}

// compareReplay loads the log and reads it raw in each iteration.
func compareReplay(b *testing.B, env *benchEnv, n int) {
	ws := windows{n: n}
	for b.Loop() {
		t0 := time.Now()
		load(b, env, n)
		t1 := time.Now()
		rawReplay(b, env, n)
		ws.add(t1.Sub(t0), time.Since(t1))
	}
	ws.report(b, "event", "raw-msg")
}

// replayBoth runs compareReplay without a checkpoint (every head's
// signature checked) and with one at the end of the log, as the keyserver
// leaves it.
func replayBoth(b *testing.B, env *benchEnv, n int) {
	b.Run("checkpoint=none", func(b *testing.B) {
		st, err := env.js.Stream(env.ctx, streams.Checkpoints)
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Purge(env.ctx); err != nil {
			b.Fatal(err)
		}
		compareReplay(b, env, n)
	})
	b.Run("checkpoint=last", func(b *testing.B) {
		checkpoint(b, env, n)
		compareReplay(b, env, n)
	})
}

// checkpoint stores a checkpoint at the end of the log.
func checkpoint(tb testing.TB, env *benchEnv, n int) {
	p := load(tb, env, n)
	if err := events.NewWriter(env.store, p, env.ks, nil).Checkpoint(env.ctx); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkReplay: 100,000 client registrations, each its own aggregate.
func BenchmarkReplay(b *testing.B) {
	const n = 100_000
	env := newBenchEnv(b, natstest.OpenFast)
	l := newBenchLog(env)
	l.registrations(b, 0, n)
	l.wait(b)
	replayBoth(b, env, n)
}

// BenchmarkReplayGroups: 10,000 clients in 10 groups of 1,000, added 10 at
// a time, and 900 rekeys of each group: 20,010 events, mostly membership
// changes of large groups.
func BenchmarkReplayGroups(b *testing.B) {
	env := newBenchEnv(b, natstest.OpenFast)
	l := newBenchLog(env)
	l.registrations(b, 0, 10_000)
	l.groups(b, 10, 1000, 10, 900)
	l.wait(b)
	replayBoth(b, env, l.count)
}

// TestReplayMillion loads a log of 1,000,000 client registrations and
// reads it raw, and logs the rates: a first Load without a checkpoint
// (every head's signature checked, as on the first start of a keyserver
// whose log has none), then rounds of Load with a checkpoint at the end of
// the log beside the raw ordered consumer. It takes minutes and runs only
// with COMM_BENCH_1M=1.
func TestReplayMillion(t *testing.T) {
	if os.Getenv("COMM_BENCH_1M") == "" {
		t.Skip("set COMM_BENCH_1M=1 to replay 1,000,000 events")
	}
	const n = 1_000_000
	env := newBenchEnv(t, natstest.OpenFast)
	l := newBenchLog(env)
	start := time.Now()
	l.registrations(t, 0, n)
	l.wait(t)
	t.Logf("wrote %d events in %v", n, time.Since(start).Round(time.Millisecond))
	rate := func(d time.Duration) float64 { return n / d.Seconds() }

	t0 := time.Now()
	p := load(t, env, n)
	tFirst := time.Since(t0)
	if err := events.NewWriter(env.store, p, env.ks, nil).Checkpoint(env.ctx); err != nil {
		t.Fatal(err)
	}
	p = nil
	t1 := time.Now()
	rawReplay(t, env, n)
	tRaw := time.Since(t1)
	t.Logf("without a checkpoint: Load %v (%.0f events/s), raw ordered consumer %v (%.0f msgs/s): %.3f of the raw rate",
		tFirst.Round(time.Millisecond), rate(tFirst), tRaw.Round(time.Millisecond), rate(tRaw), tRaw.Seconds()/tFirst.Seconds())
	for round := range 3 {
		runtime.GC()
		t0 := time.Now()
		load(t, env, n)
		t1 := time.Now()
		runtime.GC()
		t2 := time.Now()
		rawReplay(t, env, n)
		tLoad, tRaw := t1.Sub(t0), time.Since(t2)
		t.Logf("with a checkpoint, round %d: Load %v (%.0f events/s), raw ordered consumer %v (%.0f msgs/s): %.3f of the raw rate",
			round, tLoad.Round(time.Millisecond), rate(tLoad), tRaw.Round(time.Millisecond), rate(tRaw), tRaw.Seconds()/tLoad.Seconds())
	}
}
