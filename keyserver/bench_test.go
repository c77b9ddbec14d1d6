package keyserver_test

// BenchmarkRekey times Keyserver.Rekey of a group of 1,000 and 10,000
// members beside its bound, "the HPKE wrap cost on both cores": one
// bundle.Wrap, measured in the same run, times the members, divided by
// GOMAXPROCS. A rekey also appends its event, publishes every bundle and
// waits for their acknowledgements, and records the epoch; all of that
// counts against the bound. The clients are registered on a server that
// fsyncs every minute, outside the timer.
//
// Each iteration times a window of wraps and then one rekey, so that load
// from other processes on the shared machine falls on both. ms/rekey and
// µs/wrap are the medians over the iterations, ms/bound the bound of the
// median wrap, x-bound the median over the iterations of the rekey's time
// over the bound of the wrap window just before it, and mean-x-bound the
// same from the totals.

import (
	"cmp"
	"context"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/keys"
)

func BenchmarkRekey(b *testing.B) {
	for _, n := range []int{1000, 10_000} {
		b.Run("members="+strconv.Itoa(n), func(b *testing.B) { benchRekey(b, n) })
	}
}

func benchRekey(b *testing.B, members int) {
	_, nc := natstest.OpenFast(b)
	ctx := b.Context()
	seed := [32]byte{0x6b}
	ks := keys.NewSigningKey(&seed)
	k := startBench(b, ctx, nc, ks)
	registerGroup(b, ctx, k, "bench", members)

	wrapOne := benchWrapOne(b, ks)
	const window = 200 // wraps
	// bound is the wrap cost on all cores of members wraps, from the
	// time of a window of wraps.
	bound := func(wrap time.Duration) time.Duration {
		return wrap / window * time.Duration(members) / time.Duration(runtime.GOMAXPROCS(0))
	}
	var rekeys, wraps []time.Duration
	var ratios []float64
	for b.Loop() {
		t0 := time.Now()
		for range window {
			wrapOne()
		}
		t1 := time.Now()
		if _, err := k.Rekey(ctx, keyserver.Actor{}, "bench", "benchmark"); err != nil {
			b.Fatal(err)
		}
		rekey, wrap := time.Since(t1), t1.Sub(t0)
		rekeys, wraps = append(rekeys, rekey), append(wraps, wrap)
		ratios = append(ratios, rekey.Seconds()/bound(wrap).Seconds())
	}
	var tRekey, tWrap time.Duration
	for i := range rekeys {
		tRekey, tWrap = tRekey+rekeys[i], tWrap+wraps[i]
	}
	ms := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(median(rekeys)), "ms/rekey")
	b.ReportMetric(ms(bound(median(wraps))), "ms/bound")
	b.ReportMetric(float64(median(wraps).Nanoseconds())/window/1e3, "µs/wrap")
	b.ReportMetric(median(ratios), "x-bound")
	b.ReportMetric(tRekey.Seconds()/bound(tWrap).Seconds(), "mean-x-bound")
}

// BenchmarkRekeySmall times Keyserver.Rekey of small groups with fsync
// always, where the per-batch cost of an atomic batch would outweigh the
// syncs it saves: the sizes around minAtomicBatch.
func BenchmarkRekeySmall(b *testing.B) {
	for _, n := range []int{2, 8, 24, 64} {
		b.Run("members="+strconv.Itoa(n), func(b *testing.B) {
			_, nc := natstest.Open(b)
			seed := [32]byte{0x6b}
			k := startBench(b, b.Context(), nc, keys.NewSigningKey(&seed))
			registerGroup(b, b.Context(), k, "small", n)
			for b.Loop() {
				if _, err := k.Rekey(b.Context(), keyserver.Actor{}, "small", "benchmark"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func median[T cmp.Ordered](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func startBench(b *testing.B, ctx context.Context, nc *nats.Conn, ks *keys.SigningKey) *keyserver.Keyserver {
	k, err := keyserver.Start(ctx, nc, keyserver.Config{Key: ks, PolicyInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(k.Close)
	return k
}

// registerGroup registers n clients and puts them all in a new group.
func registerGroup(b *testing.B, ctx context.Context, k *keyserver.Keyserver, group string, n int) {
	regs := make([]keyserver.Registration, n)
	names := make([]string, n)
	for i := range regs {
		id, err := keys.GenerateClientIdentity(nil)
		if err != nil {
			b.Fatal(err)
		}
		regs[i] = keyserver.Registration{Public: id.Public()}
		names[i] = id.ID().String()
	}
	if err := k.RegisterClients(ctx, keyserver.Actor{}, regs); err != nil {
		b.Fatal(err)
	}
	if _, err := k.CreateGroup(ctx, keyserver.Actor{}, group, record.Policy{}); err != nil {
		b.Fatal(err)
	}
	if _, err := k.AddMembers(ctx, keyserver.Actor{}, group, names); err != nil {
		b.Fatal(err)
	}
}

// benchWrapOne returns one bundle.Wrap to a fresh member, as Rekey makes.
func benchWrapOne(b *testing.B, ks *keys.SigningKey) func() {
	id, err := keys.GenerateClientIdentity(nil)
	if err != nil {
		b.Fatal(err)
	}
	r := bundle.Recipient{ID: id.ID(), Wrap: id.Wrap.Public()}
	digest := bundle.MemberDigest([]protocol.ClientID{r.ID})
	var key [protocol.GroupKeySize]byte
	return func() {
		if _, err := bundle.Wrap(ks, protocol.GroupID{1}, 2, r, &digest, &key); err != nil {
			b.Fatal(err)
		}
	}
}
