package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"time"

	"github.com/commsec/communicator/internal/benchhook"
	"github.com/commsec/communicator/internal/loadgen"
)

// saturation is one drive of a fleet beside raw async publishing, one
// raw phase before it and one after, so that drifts on the machine fall
// on both.
type saturation struct {
	d     *loadgen.Driver
	raw   loadgen.Rate // both raw phases together
	cores float64      // CPU the process used during the drive
}

// saturateTwo: accepted messages/s with every client sending back to
// back, groups of 2. The fleet stays connected for latency.
func (r *runner) saturateTwo(ctx context.Context) error {
	f, err := r.fleet(ctx, "s2-", r.p.satClients, r.p.satClients/2)
	if err != nil {
		return err
	}
	r.sat2Fleet = f
	res, err := r.saturate(ctx, f, 0)
	if err != nil {
		return err
	}
	ours := float64(res.d.Accepted()) / r.p.satDuration.Seconds()
	r.sat2 = ours
	r.add(newRow(fmt.Sprintf("accepted messages/s at saturation, %d clients in groups of 2, %d-byte payload", r.p.satClients, r.p.size),
		perSec(ours), fmt.Sprintf("%s raw JetStream async publish", perSec(res.raw.PerSecond())), ours/res.raw.PerSecond(), atLeast(0.5)))
	r.note("sat2: %s; copies delivered %d of %d; send → verdict %s; CPU %.2f of %d cores", res.d.Verdicts(),
		res.d.Copies(), res.d.Expected(), res.d.Verdict.Quantiles(), res.cores, runtime.NumCPU())
	return r.saturateTwoNoSig(ctx, f, ours)
}

// saturateTwoNoSig drives sat2's fleet again with the relay's check of
// the senders' signatures left out (an internal hook, no setting), so
// that the row shows what the check costs on the accept path: sat2's
// figure against this one, in the same run. Clients still sign and
// verify.
func (r *runner) saturateTwoNoSig(ctx context.Context, f *loadgen.Fleet, signed float64) error {
	benchhook.SkipEnvelopeSignatures(true)
	defer benchhook.SkipEnvelopeSignatures(false)
	r.say("sat2-nosig: the relay skips the senders' signatures")
	cpu, t := loadgen.ProcessCPU(), time.Now()
	d := r.drive(ctx, f, 0, r.p.satDuration)
	cores := (loadgen.ProcessCPU() - cpu).Seconds() / time.Since(t).Seconds()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	unsigned := float64(d.Accepted()) / r.p.satDuration.Seconds()
	r.add(newRow("sat2 with the relay's signature check, beside sat2-nosig (the same load without it)",
		perSec(signed), fmt.Sprintf("%s sat2-nosig", perSec(unsigned)), signed/unsigned, atLeast(0.85)))
	r.note("sat2-nosig: %s; send → verdict %s; CPU %.2f of %d cores", d.Verdicts(), d.Verdict.Quantiles(), cores, runtime.NumCPU())
	return nil
}

// saturateEight: delivered copies/s (each copy to each member counted
// once) with every client sending back to back, groups of 8.
func (r *runner) saturateEight(ctx context.Context) error {
	f, err := r.fleet(ctx, "s8-", r.p.satClients, max(r.p.satClients/8, 1))
	if err != nil {
		return err
	}
	defer f.Close()
	res, err := r.saturate(ctx, f, 0)
	if err != nil {
		return err
	}
	ours := float64(res.d.Copies()) / r.p.satDuration.Seconds()
	r.add(newRow(fmt.Sprintf("delivered copies/s at saturation, %d clients in groups of 8, %d-byte payload", r.p.satClients, r.p.size),
		perSec(ours), fmt.Sprintf("%s raw JetStream async publish", perSec(res.raw.PerSecond())), ours/res.raw.PerSecond(), atLeast(0.5)))
	r.note("sat8: accepted %.0f/s, copies delivered %d of %d; %s; send → delivery %s; CPU %.2f of %d cores",
		float64(res.d.Accepted())/r.p.satDuration.Seconds(), res.d.Copies(), res.d.Expected(), res.d.Verdicts(),
		res.d.E2E.Quantiles(), res.cores, runtime.NumCPU())
	return nil
}

// latency: send → delivery at half the sat2 rate, beside raw publish →
// consume at the same rate (half before, half after ours).
func (r *runner) latency(ctx context.Context) error {
	f := r.sat2Fleet
	if f == nil || r.sat2 <= 0 {
		return errors.New("needs the sat2 rate of this run, which was not measured")
	}
	defer func() { f.Close(); r.sat2Fleet = nil }()
	rate := r.sat2 / 2
	raw, err := loadgen.NewRaw(ctx, r.js, r.p.size)
	if err != nil {
		return err
	}
	defer raw.Close()
	var rawLat loadgen.Histogram
	r.say("raw publish → consume at %.0f msgs/s for %v", rate, r.p.latDuration/2)
	if _, err := raw.PublishConsume(ctx, rate, r.p.latDuration/2, &rawLat); err != nil {
		return err
	}
	d := r.drive(ctx, f, rate, r.p.latDuration)
	r.say("raw publish → consume at %.0f msgs/s for %v", rate, r.p.latDuration/2)
	if _, err := raw.PublishConsume(ctx, rate, r.p.latDuration/2, &rawLat); err != nil {
		return err
	}
	r.reportLatency(d, &rawLat, rate)
	return nil
}

func (r *runner) reportLatency(d *loadgen.Driver, raw *loadgen.Histogram, rate float64) {
	p99, rawP99 := d.E2E.Quantile(0.99), raw.Quantile(0.99)
	ratio := math.NaN()
	if rawP99 > 0 && d.E2E.Count() > 0 {
		ratio = float64(p99) / float64(rawP99)
	}
	r.add(newRow(fmt.Sprintf("latency send → delivery p50 / p99 / p99.9 at %.0f msgs/s (half of sat2), groups of 2", rate),
		quantiles3(&d.E2E), fmt.Sprintf("raw publish → consume %s", quantiles3(raw)), ratio, atMost(3)))
	r.note("latency: the ratio is of the p99s; %d deliveries measured, %d raw; accepted %.0f/s, %s; send → verdict %s",
		d.E2E.Count(), raw.Count(), float64(d.Accepted())/r.p.latDuration.Seconds(), d.Verdicts(), quantiles3(&d.Verdict))
}

func quantiles3(h *loadgen.Histogram) string {
	if h.Count() == 0 {
		return "no samples"
	}
	return fmt.Sprintf("%s / %s / %s ms", msNum(h.Quantile(0.5)), msNum(h.Quantile(0.99)), msNum(h.Quantile(0.999)))
}

func msNum(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	if ms < 10 {
		return fmt.Sprintf("%.2f", ms)
	}
	return fmt.Sprintf("%.1f", ms)
}

// fleet registers, groups and connects a fleet of clients.
func (r *runner) fleet(ctx context.Context, prefix string, clients, groups int) (*loadgen.Fleet, error) {
	s, err := r.ensureStack(ctx)
	if err != nil {
		return nil, err
	}
	t := time.Now()
	f, err := loadgen.Provision(ctx, s, loadgen.FleetConfig{Prefix: prefix, Clients: clients, Groups: groups})
	if err != nil {
		return nil, err
	}
	r.say("registered %d clients in %d groups in %v", clients, groups, time.Since(t).Round(time.Millisecond))
	if err := connectFleet(ctx, s, f, r.say); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func connectFleet(ctx context.Context, s loadgen.Target, f *loadgen.Fleet, say func(string, ...any)) error {
	t := time.Now()
	if err := f.Connect(ctx, s, (&loadgen.LimitedLog{W: say, Max: 20}).Logf); err != nil {
		return err
	}
	say("connected %d clients in %v", len(f.Members), time.Since(t).Round(time.Millisecond))
	return nil
}

// saturate measures raw async publishing, then f sending back to back,
// then raw again.
func (r *runner) saturate(ctx context.Context, f *loadgen.Fleet, rate float64) (*saturation, error) {
	raw, err := loadgen.NewRaw(ctx, r.js, r.p.size)
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	res := &saturation{}
	for i := range 2 {
		r.say("raw JetStream async publish for %v", r.p.rawDuration)
		rr, err := raw.PublishRate(ctx, r.p.rawDuration)
		if err != nil {
			return nil, err
		}
		r.say("raw: %.0f msgs/s", rr.PerSecond())
		res.raw.Stored, res.raw.Elapsed = res.raw.Stored+rr.Stored, res.raw.Elapsed+rr.Elapsed
		if i == 0 {
			cpu, t := loadgen.ProcessCPU(), time.Now()
			res.d = r.drive(ctx, f, rate, r.p.satDuration)
			res.cores = (loadgen.ProcessCPU() - cpu).Seconds() / time.Since(t).Seconds()
		}
	}
	return res, ctx.Err()
}

// drive runs f at rate (0: back to back) for d after the warm-up.
func (r *runner) drive(ctx context.Context, f *loadgen.Fleet, rate float64, d time.Duration) *loadgen.Driver {
	drv := loadgen.NewDriver(f, loadgen.DriveConfig{Rate: rate, Size: r.p.size, Warmup: r.p.satWarmup, Duration: d, Say: r.say})
	drv.Run(ctx)
	drv.Stop()
	return drv
}
