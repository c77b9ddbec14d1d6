package main

// The fanout5k figure: many connected clients in small groups at a
// moderate rate, where the delivery cursors used to cost more synced
// writes than the messages (issue 14): JetStream writes per accepted
// message, counted on the servers, and send → delivery p99 beside raw
// publish → consume on the same cluster.

import (
	"context"
	"fmt"
	"maps"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/commsec/communicator/internal/clusterstack"
	"github.com/commsec/communicator/internal/loadgen"
	"github.com/commsec/communicator/streams"
)

// fanGroupSize is the size of fanout5k's groups.
const fanGroupSize = 5

// fanSettle lets the last cursors and leases of the drive be written
// before the streams are read again.
const fanSettle = 2 * time.Second

func (r *runner) fanout(ctx context.Context) error {
	s, err := r.startCluster(ctx, "fanout", clusterSpec{shards: r.clusterShards(), relays: 2, gateways: 2})
	if err != nil {
		return err
	}
	defer s.Close()
	half := r.p.fanClients / 2
	fa, err := r.clusterFleet(ctx, s, 0, "a-", half, max(half/fanGroupSize, 1))
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := r.clusterFleet(ctx, s, 1, "b-", half, max(half/fanGroupSize, 1))
	if err != nil {
		return err
	}
	defer fb.Close()
	nc, js, err := s.Scratch(0)
	if err != nil {
		return err
	}
	defer nc.Close()
	raw, err := loadgen.NewRawReplicas(ctx, js, r.p.size, 3)
	if err != nil {
		return err
	}
	defer raw.Close()
	var rawLat loadgen.Histogram
	if err := r.rawLatency(ctx, raw, &rawLat); err != nil {
		return err
	}
	before, err := s.Cluster.StreamLastSeqs()
	if err != nil {
		return err
	}
	batchesBefore := cursorBatches(s)
	leasesBefore := leaseBatches(s)
	pathsBefore, stagesBefore := gatewayPaths(s), readStages(s)
	cpu, t := loadgen.ProcessCPU(), time.Now()
	d := r.drive(ctx, joinFleets(fa, fb), r.p.fanRate, r.p.fanDuration)
	cores := (loadgen.ProcessCPU() - cpu).Seconds() / time.Since(t).Seconds()
	if !loadgen.SleepUntil(ctx, time.Now().Add(fanSettle)) {
		return ctx.Err()
	}
	// Everything counted over the drive is read now, before the raw
	// phase, during which the relays still renew their leases.
	after, err := s.Cluster.StreamLastSeqs()
	if err != nil {
		return err
	}
	batches, leases := cursorBatches(s)-batchesBefore, leaseBatches(s).minus(leasesBefore)
	stages, ps := readStages(s).since(stagesBefore), gatewayPaths(s).minus(pathsBefore)
	if err := r.rawLatency(ctx, raw, &rawLat); err != nil {
		return err
	}
	r.reportFanout(s, d, &rawLat, writesBetween(before, after), batches, leases, cores)
	r.note("fanout5k, where the time goes: the clients' send → verdict %s, send → delivery %s (measured sends); the services' "+
		"own timings (every observation of the drive, warm-up included, and the %v after it, in buckets up to 0.1, 0.25, 0.5, 1 s): "+
		"%s; the gateways over the drive: %s", d.Verdict.Quantiles(), d.E2E.Quantiles(), fanSettle, stages, ps)
	return nil
}

// paths is what the stack's gateways counted of the ways a copy reached
// a client: live feeds found to have lost messages, catch-up passes.
type paths struct{ liveLost, consumers, rechecks uint64 }

func (p paths) minus(o paths) paths {
	return paths{p.liveLost - o.liveLost, p.consumers - o.consumers, p.rechecks - o.rechecks}
}

func (p paths) String() string {
	return fmt.Sprintf("%d live feeds found lossy, %d catch-up passes, %d leader-election checks", p.liveLost, p.consumers, p.rechecks)
}

func gatewayPaths(s *clusterstack.Stack) paths {
	var out paths
	for _, g := range s.Gateways {
		c := g.Gateway.Metrics.Costs()
		out.liveLost, out.consumers, out.rechecks = out.liveLost+c.LiveLost, out.consumers+c.Consumers, out.rechecks+c.LeaderRechecks
	}
	return out
}

// batched is what the relays renewed in atomic batches: each batch is one
// synced append, however many leases it holds.
type batched struct{ batches, leases uint64 }

func (b batched) minus(o batched) batched { return batched{b.batches - o.batches, b.leases - o.leases} }

// leaseBatches sums the lease renewal batches of the stack's relays.
func leaseBatches(s *clusterstack.Stack) batched {
	var out batched
	for _, r := range s.Relays() {
		b, n := r.Metrics.LeaseBatches()
		out.batches, out.leases = out.batches+b, out.leases+n
	}
	return out
}

// cursorBatches is the atomic batches of cursors the stack's gateways
// wrote: each is one synced append, however many cursors it holds.
func cursorBatches(s *clusterstack.Stack) uint64 {
	var n uint64
	for _, g := range s.Gateways {
		n += g.Gateway.Metrics.Costs().CursorBatches
	}
	return n
}

func (r *runner) rawLatency(ctx context.Context, raw *loadgen.Raw, h *loadgen.Histogram) error {
	r.say("raw publish → consume (R3) at %.0f msgs/s for %v", r.p.fanRate, r.p.fanDuration/2)
	_, err := raw.PublishConsume(ctx, r.p.fanRate, r.p.fanDuration/2, h)
	return err
}

// writesBetween is each Communicator stream's stored messages between
// two readings (the scratch streams of the raw phases left out).
func writesBetween(before, after map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for name, seq := range after {
		if strings.HasPrefix(name, "LOADGEN_") || strings.HasPrefix(name, "COMMBENCH_") {
			continue
		}
		if n := seq - before[name]; n > 0 {
			out[name] = n
		}
	}
	return out
}

func (r *runner) reportFanout(s *clusterstack.Stack, d *loadgen.Driver, raw *loadgen.Histogram, writes map[string]uint64, batches uint64, leases batched, cores float64) {
	accepted := d.AcceptedAll()
	var total uint64
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(writes)) {
		total += writes[name]
		parts = append(parts, fmt.Sprintf("%s %.2f", name, float64(writes[name])/float64(max(accepted, 1))))
	}
	// A synced write is one append to a stream's log: each message, but
	// one for a whole atomic batch of cursors or of lease renewals.
	cursors := writes[streams.KVStream(streams.Cursors)]
	leaseRecords := min(leases.leases, writes[streams.KVStream(streams.Relays)])
	synced := total - cursors + min(batches, cursors) - leaseRecords + min(leases.batches, leaseRecords)
	per, records := math.NaN(), math.NaN()
	if accepted > 0 {
		per, records = float64(synced)/float64(accepted), float64(total)/float64(accepted)
	}
	shape := fmt.Sprintf("%s clients in groups of %d at %.0f msgs/s", count(r.p.fanClients), fanGroupSize, r.p.fanRate)
	r.add(row{figure: "JetStream synced writes per accepted message (an atomic batch of cursors or leases is one), " + shape,
		ours: fmt.Sprintf("%.2f", per), ratio: nanRatio, goal: goal{limit: 1.1, unit: "writes"}, checked: per})
	r.add(row{figure: "JetStream records stored per accepted message, " + shape, ours: fmt.Sprintf("%.2f", records), ratio: nanRatio})
	p99, rawP99 := d.E2E.Quantile(0.99), raw.Quantile(0.99)
	ratio := math.NaN()
	if rawP99 > 0 && d.E2E.Count() > 0 {
		ratio = float64(p99) / float64(rawP99)
	}
	r.add(newRow("latency send → delivery p50 / p99 / p99.9, "+shape, quantiles3(&d.E2E),
		"raw R3 publish → consume "+quantiles3(raw), ratio, atMost(3)))
	r.note("fanout5k: 2 gateways and 2 relays on 3 nodes (K = %d), half the clients on each gateway; %v after %v of "+
		"warm-up, %s, %d of %d copies delivered; writes are the streams' last-sequence growth over the drive and %v "+
		"after (every replica is one write per node, counted once): %d records for %d accepted, per accepted %s, of which "+
		"%d cursors in %d atomic batches, %d lease renewals in %d; the ratio is of "+
		"the p99s; raw: %d messages, half before and half after; the process (clients, services, 3 nodes) used %.2f of %d cores",
		s.Shards(), r.p.fanDuration, r.p.satWarmup, d.Verdicts(), d.Copies(), d.Expected(), fanSettle, total, accepted,
		strings.Join(parts, ", "), cursors, batches, leaseRecords, leases.batches, raw.Count(), cores, runtime.NumCPU())
}
