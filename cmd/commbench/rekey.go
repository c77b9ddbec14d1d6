package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/loadgen"
	"github.com/commsec/communicator/internal/stack"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/keys"
)

// wrapWindow is how many bundle.Wrap calls each core makes to time the
// bound before each rekey.
const wrapWindow = 200

// rekey times Keyserver.Rekey of groups of each size (it returns once
// JetStream has acknowledged every bundle) beside its bound, the time of
// members × bundle.Wrap on all cores at once. Each round times a window of wraps
// and then one rekey of each group, so that load on the machine falls on
// both; the row shows the medians.
func (r *runner) rekey(ctx context.Context) error {
	s, err := r.ensureStack(ctx)
	if err != nil {
		return err
	}
	sizes := r.p.rekeySizes
	names, err := r.rekeyGroups(ctx, s, sizes)
	if err != nil {
		return err
	}
	wrap, bundleSize, err := wrapOne(s.Keys().Keyserver)
	if err != nil {
		return err
	}
	results := make([]rekeyResult, len(sizes))
	for round := range r.p.rekeyRounds {
		for i, n := range sizes {
			if err := results[i].round(ctx, s, names[i], n, wrap); err != nil {
				return err
			}
			r.say("rekey round %d: %s members in %v (bound %v)", round+1, count(n), last(results[i].rekeys).Round(time.Millisecond),
				last(results[i].bounds).Round(time.Millisecond))
		}
	}
	for i, n := range sizes {
		floor, err := r.storageFloor(ctx, n, bundleSize)
		if err != nil {
			return err
		}
		results[i].report(r, n, floor)
	}
	return nil
}

// rekeyGroups registers max(sizes) clients and makes a group of the
// first n of them for each size n; it returns the groups' names.
func (r *runner) rekeyGroups(ctx context.Context, s *stack.Stack, sizes []int) ([]string, error) {
	t := time.Now()
	ids, err := registerMany(ctx, s, slices.Max(sizes))
	if err != nil {
		return nil, err
	}
	r.say("registered %s clients in %v", count(len(ids)), time.Since(t).Round(time.Millisecond))
	names := make([]string, len(sizes))
	for i, n := range sizes {
		t := time.Now()
		names[i] = fmt.Sprintf("rekey-%d", n)
		if _, err := s.Keyserver().CreateGroup(ctx, keyserver.Actor{}, names[i], record.Policy{}); err != nil {
			return nil, err
		}
		if _, err := s.Keyserver().AddMembers(ctx, keyserver.Actor{}, names[i], ids[:n]); err != nil {
			return nil, err
		}
		r.say("group of %s members made in %v", count(n), time.Since(t).Round(time.Millisecond))
	}
	return names, nil
}

// registerMany registers n fresh clients without names (their ids
// name them) and returns the ids; the keys are made on every core.
func registerMany(ctx context.Context, s *stack.Stack, n int) ([]string, error) {
	regs := make([]keyserver.Registration, n)
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make([]error, runtime.GOMAXPROCS(0))
	for w := range errs {
		wg.Go(func() {
			for i := w; i < n; i += len(errs) {
				id, err := keys.GenerateClientIdentity(rand.Reader)
				if err != nil {
					errs[w] = err
					return
				}
				regs[i], ids[i] = keyserver.Registration{Public: id.Public()}, id.ID().String()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return ids, s.Keyserver().RegisterClients(ctx, keyserver.Actor{}, regs)
}

// wrapOne returns one bundle.Wrap to a fresh member, as Rekey makes, and
// the size of the bundle.
func wrapOne(ks *keys.SigningKey) (func() error, int, error) {
	id, err := keys.GenerateClientIdentity(nil)
	if err != nil {
		return nil, 0, err
	}
	rcpt := bundle.Recipient{ID: id.ID(), Wrap: id.Wrap.Public()}
	digest := bundle.MemberDigest([]protocol.ClientID{rcpt.ID})
	var key [protocol.GroupKeySize]byte
	b, err := bundle.Wrap(ks, protocol.GroupID{1}, 2, rcpt, &digest, &key)
	if err != nil {
		return nil, 0, err
	}
	return func() error {
		_, err := bundle.Wrap(ks, protocol.GroupID{1}, 2, rcpt, &digest, &key)
		return err
	}, len(b.Marshal()), nil
}

// wrapsOnAllCores runs wrapWindow wraps on every core at once and
// returns the elapsed time per wrap of all of them: a rekey's wrapping
// takes that × members at best. (Both cores busy compute more slowly
// than one alone, so a one-core time ÷ cores would understate it.)
func wrapsOnAllCores(wrap func() error) (time.Duration, error) {
	procs := runtime.GOMAXPROCS(0)
	errs := make([]error, procs)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range procs {
		wg.Go(func() {
			for range wrapWindow {
				if errs[w] = wrap(); errs[w] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start) / time.Duration(procs*wrapWindow), errors.Join(errs...)
}

// rekeyResult collects the rounds of one group size.
type rekeyResult struct {
	rekeys, bounds []time.Duration
	ratios         []float64
}

func (res *rekeyResult) round(ctx context.Context, s *stack.Stack, group string, n int, wrap func() error) error {
	perWrap, err := wrapsOnAllCores(wrap)
	if err != nil {
		return err
	}
	t1 := time.Now()
	if _, err := s.Keyserver().Rekey(ctx, keyserver.Actor{}, group, "commbench"); err != nil {
		return err
	}
	took := time.Since(t1)
	bound := perWrap * time.Duration(n)
	res.rekeys, res.bounds = append(res.rekeys, took), append(res.bounds, bound)
	res.ratios = append(res.ratios, took.Seconds()/bound.Seconds())
	return nil
}

func (res *rekeyResult) report(r *runner, n int, floor loadgen.Rate) {
	procs := runtime.GOMAXPROCS(0)
	rekey, bound := median(res.rekeys), median(res.bounds)
	r.add(newRow(fmt.Sprintf("rekey of %s members, bundles published and acknowledged", count(n)),
		ms(rekey), fmt.Sprintf("%s = %s wraps on %d cores at once, %s each", ms(bound), count(n), procs, us(bound*time.Duration(procs)/time.Duration(n))),
		median(res.ratios), atMost(1.3)))
	// This row shows the rekey beside storing its bundles alone, the
	// way the keyserver stores them.
	r.add(newRow(fmt.Sprintf("rekey of %s members, beside storing its bundles alone", count(n)),
		ms(rekey), fmt.Sprintf("%s raw atomic batch publish of %s bundle-sized messages, %s a batch (%s)",
			ms(floor.Elapsed), count(n), count(storageBatch), perSec(floor.PerSecond())),
		rekey.Seconds()/floor.Elapsed.Seconds(), goal{}))
	r.note("rekey %s: median of %d rounds; the storage bound was measured once, after them", count(n), len(res.rekeys))
}

// storageBatch is the keyserver's atomic batch of bundles: nats-server's
// default maximum batch size.
const storageBatch = 1000

// storageFloor publishes n messages of the bundle's size in atomic
// batches: what storing a rekey's bundles costs JetStream alone.
func (r *runner) storageFloor(ctx context.Context, n, size int) (loadgen.Rate, error) {
	raw, err := loadgen.NewRaw(ctx, r.js, size)
	if err != nil {
		return loadgen.Rate{}, err
	}
	defer raw.Close()
	return raw.PublishBatches(ctx, n, size, storageBatch)
}

func median[T int | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func last[T any](xs []T) T { return xs[len(xs)-1] }

func ms(d time.Duration) string { return msNum(d) + " ms" }
