package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"time"

	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/internal/flood"
	"github.com/commsec/communicator/internal/loadgen"
	"github.com/commsec/communicator/protocol/handshake"
)

// Limits of the flood figure.
const (
	// floodGoal is the legitimate client's handshake timeout, and the
	// goal for its p99: a failed handshake counts as this long.
	floodGoal   = 2 * time.Second
	floodWait   = time.Minute // bound on the flood's filling the gateway's table
	floodWarmup = 3           // handshakes not recorded, before the first phase
	// gatewayHandshakes is the stack's gateway's cap on handshakes in
	// progress (gateway.Config's default MaxHandshakes).
	gatewayHandshakes = 256
)

// legitSource is the legitimate client's address, apart from the flood's
// 127.0.0.1 to 127.0.0.<floodSources>.
var legitSource = netip.AddrFrom4([4]byte{127, 0, 0, 200})

// flood measures the handshakes of one registered client, one after the
// other, while many connections that never finish M1 press on the
// gateway from a few source addresses (docs/PROTOCOL.md, 4.9). The bound
// is the same client's handshakes without the flood, half before it and
// half after.
func (r *runner) flood(ctx context.Context) error {
	s, err := r.ensureStack(ctx)
	if err != nil {
		return err
	}
	if limit, err := raiseFileLimit(); err != nil || limit < uint64(2*r.p.floodConns+parentReserveFiles) {
		r.add(row{figure: r.floodFigure(), goal: goal{limit: floodGoal.Seconds(), unit: "s"}, verdict: "not run: file limit"})
		r.note("flood: the limit on open files (%d, %v) is under the %d the flood needs (both ends of each connection)",
			limit, err, 2*r.p.floodConns+parentReserveFiles)
		return nil
	}
	ids, err := registerIdentities(ctx, s, 1, "flood-")
	if err != nil {
		return err
	}
	c := &legitClient{addr: s.GatewayAddr(), cfg: handshake.ClientConfig{Identity: ids[0].Sig, ServerKey: s.Keys().Gateway.Public()}}
	var alone, flooded loadgen.Histogram
	c.run(ctx, floodWarmup, &loadgen.Histogram{}, nil)
	r.say("legitimate client alone: %d handshakes", r.p.floodTries/2)
	c.run(ctx, r.p.floodTries/2, &alone, nil)
	gw := s.Gateway()
	before, _, _ := gw.Metrics.Snapshot()
	f := &floodRun{Flood: flood.Start(s.GatewayAddr(), r.p.floodConns, r.p.floodSources)}
	stop := r.progress(func() string {
		return fmt.Sprintf("flood connections made %d, turned away %d", f.Dialed(), flood.TurnedAway(gw))
	})
	err = r.floodPhase(ctx, c, f, gw, &flooded)
	after, _, _ := gw.Metrics.Snapshot()
	stop()
	f.Stop()
	if err != nil {
		return err
	}
	waitQuiet(ctx, gw) // the flood's handshakes in progress end
	r.say("legitimate client alone: %d handshakes", r.p.floodTries-r.p.floodTries/2)
	c.run(ctx, r.p.floodTries-r.p.floodTries/2, &alone, nil)
	for k := range after {
		after[k] -= before[k]
	}
	r.reportFlood(c, &flooded, &alone, f, after)
	return ctx.Err()
}

// floodPhase waits until the flood holds the gateway's table, then runs
// the client's handshakes, one every floodPace (so that the measurement
// spans M1 deadlines, when the flood's slots free and it takes them
// again), each once the table is full again.
func (r *runner) floodPhase(ctx context.Context, c *legitClient, f *floodRun, gw *gateway.Gateway, h *loadgen.Histogram) error {
	start := time.Now()
	for f.Dialed() < int64(r.p.floodConns) || flood.TurnedAway(gw) < uint64(r.p.floodConns-gatewayHandshakes) {
		if ctx.Err() != nil || time.Since(start) > floodWait {
			return fmt.Errorf("the flood did not fill the gateway's table in %v: %d connections made, %d turned away",
				floodWait, f.Dialed(), flood.TurnedAway(gw))
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.say("flood of %d from %d sources holds the table after %v; legitimate client: %d handshakes", r.p.floodConns,
		r.p.floodSources, time.Since(start).Round(time.Millisecond), r.p.floodTries)
	cpu, t := loadgen.ProcessCPU(), time.Now()
	next := t
	c.failedFlooded = c.run(ctx, r.p.floodTries, h, func() {
		next = next.Add(r.p.floodPace)
		time.Sleep(time.Until(next))
		waitTurnedAway(ctx, gw)
	})
	f.cores = (loadgen.ProcessCPU() - cpu).Seconds() / time.Since(t).Seconds()
	f.rate = float64(f.Dialed()) / time.Since(start).Seconds()
	return nil
}

// waitTurnedAway returns once the gateway turns one more connection
// away, so that its table is full (or after a second).
func waitTurnedAway(ctx context.Context, gw *gateway.Gateway) {
	mark := flood.TurnedAway(gw)
	for start := time.Now(); flood.TurnedAway(gw) == mark && ctx.Err() == nil && time.Since(start) < time.Second; {
		time.Sleep(time.Millisecond)
	}
}

// waitQuiet returns once the gateway has refused nothing for 100 ms (or
// after 5 s).
func waitQuiet(ctx context.Context, gw *gateway.Gateway) {
	total := func() (n uint64) {
		refused, _, _ := gw.Metrics.Snapshot()
		for _, v := range refused {
			n += v
		}
		return n
	}
	for start, last := time.Now(), total(); ctx.Err() == nil && time.Since(start) < 5*time.Second; {
		time.Sleep(100 * time.Millisecond)
		n := total()
		if n == last {
			return
		}
		last = n
	}
}

func (r *runner) floodFigure() string {
	return fmt.Sprintf("legitimate handshake p50 / p99 under %s half-open handshakes from %d sources", count(r.p.floodConns),
		r.p.floodSources)
}

func (r *runner) reportFlood(c *legitClient, flooded, alone *loadgen.Histogram, f *floodRun, refused map[string]uint64) {
	p99, ratio, checked := flooded.Quantile(0.99), nanRatio, nanRatio
	ours := p50p99(flooded)
	switch {
	case c.failedFlooded > 0: // not within the 2 s, whatever the quantiles say
		checked = math.Inf(1)
		ours += fmt.Sprintf(", %d failed", c.failedFlooded)
	case flooded.Count() > 0:
		checked = p99.Seconds()
	}
	if flooded.Count() > 0 && alone.Count() > 0 {
		ratio = float64(p99) / float64(alone.Quantile(0.99))
	}
	r.add(row{figure: r.floodFigure(), ours: ours, bound: "alone " + p50p99(alone), ratio: ratio,
		goal: goal{limit: floodGoal.Seconds(), unit: "s"}, checked: checked})
	r.note("flood: %d handshakes under the flood (one every %v, once the gateway turned a flood connection away), %d alone, "+
		"one after the other from %v with a %v timeout; failed %d%s "+
		"(counted as %v). The flood's connections send nothing or half a header, and dial again %v on average after the gateway "+
		"closes them: %s made (%.0f/s); the gateway's refusals meanwhile %v; CPU %.2f cores. With %d samples the p99 is "+
		"the slowest", flooded.Count(), r.p.floodPace, alone.Count(), legitSource, floodGoal, c.failed, c.firstErrText(), floodGoal,
		flood.Redial, count(int(f.Dialed())), f.rate, refused, f.cores, flooded.Count())
}

func p50p99(h *loadgen.Histogram) string {
	if h.Count() == 0 {
		return "no samples"
	}
	return fmt.Sprintf("%s / %s ms", msNum(h.Quantile(0.5)), msNum(h.Quantile(0.99)))
}

// legitClient is the registered client measured by the flood figure.
type legitClient struct {
	addr          string
	cfg           handshake.ClientConfig
	failed        int // in every phase
	failedFlooded int // under the flood
	firstErr      error
}

// run completes n handshakes one after the other, calling before (if not
// nil) ahead of each, and records how long each took from dial to a
// verified Ready; a failure counts as floodGoal or more. It returns the
// number that failed.
func (c *legitClient) run(ctx context.Context, n int, h *loadgen.Histogram, before func()) (failed int) {
	for range n {
		if ctx.Err() != nil {
			return failed
		}
		if before != nil {
			before()
		}
		start := time.Now()
		if err := c.once(ctx, start.Add(floodGoal)); err != nil {
			failed++
			c.failed++
			if c.firstErr == nil {
				c.firstErr = err
			}
			h.Record(max(time.Since(start), floodGoal))
			continue
		}
		h.Record(time.Since(start))
	}
	return failed
}

func (c *legitClient) once(ctx context.Context, deadline time.Time) error {
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(legitSource, 0)), Deadline: deadline}
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	cfg := c.cfg
	cfg.Timeout = time.Until(deadline)
	conn, err := handshake.Client(nc, cfg)
	if err != nil {
		return err
	}
	return conn.Close()
}

func (c *legitClient) firstErrText() string {
	if c.firstErr == nil {
		return ""
	}
	return fmt.Sprintf(" (first: %v)", c.firstErr)
}

// floodRun is a flood with what the flood figure measured of it.
type floodRun struct {
	*flood.Flood
	cores float64 // CPU the process used while the client measured
	rate  float64 // connections made per second
}
