package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/internal/loadgen"
	"github.com/commsec/communicator/internal/stack"
	"github.com/commsec/communicator/internal/syncwriter"
)

// params are the sizes and durations of a run.
type params struct {
	size                     int // payload bytes of the message figures
	hsClients                int
	hsWarmup, hsDuration     time.Duration
	hsBoundDuration          time.Duration // each measurement of the primitives on all cores
	satClients               int
	satWarmup, satDuration   time.Duration
	rawDuration              time.Duration // each raw phase; one before and one after ours
	latDuration              time.Duration
	rekeySizes               []int
	rekeyRounds              int
	coldEvents, coldRounds   int
	idleSteps                []int
	idleGoalKiB              float64
	idleDialers, idlePerAddr int
	// idleQuiet precedes each memory sample: nats-server drops a message
	// block's cache after 10 s without access, and the caches that
	// registering and connecting loaded are JetStream's, not the gateway's.
	idleQuiet time.Duration
	// floodConns connections that never finish M1, from floodSources
	// addresses (more than the gateway's 256 slots); floodTries
	// handshakes of the legitimate client under them, one every
	// floodPace, and as many alone.
	floodConns, floodSources, floodTries int
	floodPace                            time.Duration
	// The cluster figures (issue 14). shardClients send back to back in
	// groups of 2 on each K; casWriters do raw compare-and-swap publishes
	// for casDuration on 1 and on K streams.
	shardClients int
	casWriters   int
	casDuration  time.Duration
	// ingressClients in groups of 2, half through each of 2 gateways,
	// send ingressRate messages/s in all for ingressDuration.
	ingressClients  int
	ingressRate     float64
	ingressDuration time.Duration
	// stormClients connected to one gateway that restarts (fewer if the
	// limit on open files is lower; stormGroupSize a group).
	stormClients, stormGroupSize int
	// fanClients in groups of 5 send fanRate messages/s in all for
	// fanDuration.
	fanClients  int
	fanRate     float64
	fanDuration time.Duration
	// projClients registrations and projMemberships memberships.
	projClients, projMemberships int
}

func fullParams() params {
	return params{size: 256,
		hsClients: 200, hsWarmup: 2 * time.Second, hsDuration: 15 * time.Second, hsBoundDuration: 2 * time.Second,
		floodConns: 2000, floodSources: 16, floodTries: 50, floodPace: 100 * time.Millisecond,
		satClients: 200, satWarmup: 3 * time.Second, satDuration: 20 * time.Second, rawDuration: 5 * time.Second,
		latDuration: 20 * time.Second,
		rekeySizes:  []int{1000, 10_000}, rekeyRounds: 3,
		coldEvents: 1_000_000, coldRounds: 2,
		idleSteps: []int{10_000, 50_000, 100_000}, idleGoalKiB: 10, idleDialers: 128, idlePerAddr: 10_000,
		idleQuiet:    11 * time.Second,
		shardClients: 200, casWriters: 200, casDuration: 5 * time.Second,
		ingressClients: 200, ingressRate: 400, ingressDuration: 10 * time.Second,
		stormClients: 18_000, stormGroupSize: 100,
		fanClients: 5000, fanRate: 500, fanDuration: 30 * time.Second,
		projClients: 100_000, projMemberships: 200_000,
	}
}

func shortParams() params {
	return params{size: 256,
		hsClients: 16, hsWarmup: 300 * time.Millisecond, hsDuration: 2 * time.Second, hsBoundDuration: 200 * time.Millisecond,
		floodConns: 400, floodSources: 4, floodTries: 10, floodPace: 50 * time.Millisecond,
		satClients: 16, satWarmup: 300 * time.Millisecond, satDuration: 2 * time.Second, rawDuration: time.Second,
		latDuration: 2 * time.Second,
		rekeySizes:  []int{100, 500}, rekeyRounds: 1,
		coldEvents: 20_000, coldRounds: 1,
		idleSteps: []int{1000, 2000}, idleGoalKiB: 10, idleDialers: 32, idlePerAddr: 1000,
		shardClients: 16, casWriters: 50, casDuration: time.Second,
		ingressClients: 20, ingressRate: 50, ingressDuration: 2 * time.Second,
		stormClients: 300, stormGroupSize: 50,
		fanClients: 100, fanRate: 50, fanDuration: 3 * time.Second,
		projClients: 5000, projMemberships: 10_000,
	}
}

// runner runs the figures of one invocation and collects the table.
type runner struct {
	o         *options
	p         params
	stderr    io.Writer
	dir       string
	stack     *stack.Stack // started by the first figure that needs it
	nc        *nats.Conn   // over TCP to the stack's NATS, for the raw phases
	js        jetstream.JetStream
	rows      []row
	notes     []string
	sat2      float64        // accepted messages/s of sat2, for latency
	sat2Fleet *loadgen.Fleet // sat2's clients, still connected for latency
	failed    bool
	// clusterRuns numbers the clusters started, for their directories.
	clusterRuns   int
	noShardsNoted bool
}

// figures run in this order; latency needs sat2's rate.
var figures = map[string]func(*runner, context.Context) error{
	"handshake": (*runner).handshake,
	"flood":     (*runner).flood,
	"sat2":      (*runner).saturateTwo,
	"latency":   (*runner).latency,
	"sat8":      (*runner).saturateEight,
	"rekey":     (*runner).rekey,
	"idle":      (*runner).idle,
	"coldstart": (*runner).coldStart,
	"projmem":   (*runner).projMem,
	"shards":    (*runner).shards,
	"ingress":   (*runner).ingress,
	"storm":     (*runner).storm,
	"fanout5k":  (*runner).fanout,
	"failover":  (*runner).failover,
}

// bench runs the chosen figures and prints the table.
func bench(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	r := &runner{o: o, p: fullParams(), stderr: syncwriter.New(stderr)} // progress lines come from several goroutines and from the children
	if o.short {
		r.p = shortParams()
	}
	dir, err := os.MkdirTemp(o.dir, "commbench-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	r.dir = dir
	defer r.closeStack()
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return fmt.Errorf("--profile: %w", err)
		}
	}
	env := describe(o)
	r.say("%s", env)
	start := time.Now()
	if err := r.runAll(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%s\nCommand: commbench %s; took %v\n\n", env, argsText(o.args), time.Since(start).Round(time.Second))
	printTable(stdout, r.rows, r.notes)
	if r.failed {
		return errors.New("some figures could not be measured (see the table)")
	}
	return nil
}

func (r *runner) runAll(ctx context.Context) error {
	for _, name := range figureNames {
		if !r.o.runs(name) {
			continue
		}
		r.say("== %s", name)
		t := time.Now()
		stop := r.profile(name)
		err := figures[name](r, ctx)
		stop()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			r.failed = true
			r.rows = append(r.rows, row{figure: name, verdict: "error"})
			r.note("%s: %v", name, err)
			r.say("%s failed: %v", name, err)
			continue
		}
		r.say("%s done in %v", name, time.Since(t).Round(time.Millisecond))
	}
	return nil
}

func (r *runner) say(format string, a ...any) {
	fmt.Fprintf(r.stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

func (r *runner) note(format string, a ...any) { r.notes = append(r.notes, fmt.Sprintf(format, a...)) }

func (r *runner) add(rows ...row) { r.rows = append(r.rows, rows...) }

// ensureStack starts the one-machine stack on first use.
func (r *runner) ensureStack(ctx context.Context) (*stack.Stack, error) {
	if r.stack != nil {
		return r.stack, nil
	}
	r.say("starting NATS (JetStream %s), keyserver, relay and gateway", r.o.syncPolicy())
	s, err := loadgen.StartStack(ctx, filepath.Join(r.dir, "stack"), r.o.sync.Interval())
	if err != nil {
		return nil, err
	}
	nc, js, err := loadgen.Connect(s, "commbench")
	if err != nil {
		s.Close()
		return nil, err
	}
	r.stack, r.nc, r.js = s, nc, js
	return s, nil
}

func (r *runner) closeStack() {
	if r.stack == nil {
		return
	}
	r.sat2Fleet.Close()
	r.nc.Close()
	r.stack.Close()
	r.stack = nil
}

// profile starts the CPU profile of a figure if --profile is set; the
// returned stop ends it and writes the allocations so far beside the
// ones at the start (go tool pprof -base NAME.allocs-before.pprof
// NAME.allocs.pprof shows the figure's).
func (r *runner) profile(name string) (stop func()) {
	if r.o.profile == "" {
		return func() {}
	}
	path := func(kind string) string { return filepath.Join(r.o.profile, name+"."+kind+".pprof") }
	r.writeProfile("allocs", path("allocs-before"))
	f, err := os.Create(path("cpu"))
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		r.say("profile %s: %v", name, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		r.writeProfile("allocs", path("allocs"))
	}
}

// profileHeap writes the heap in use and the goroutines now, if
// --profile is set.
func (r *runner) profileHeap(name string) {
	if r.o.profile == "" {
		return
	}
	r.writeProfile("heap", filepath.Join(r.o.profile, name+".heap.pprof"))
	r.writeProfile("goroutine", filepath.Join(r.o.profile, name+".goroutine.pprof"))
}

func (r *runner) writeProfile(kind, path string) {
	f, err := os.Create(path)
	if err != nil {
		r.say("profile: %v", err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup(kind).WriteTo(f, 0); err != nil {
		r.say("profile: %v", err)
	}
}

// progress prints a line every second with what f returns, until the
// returned stop is called.
func (r *runner) progress(f func() string) (stop func()) { return progressLine(r.say, f) }
