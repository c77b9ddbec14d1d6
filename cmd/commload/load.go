package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/internal/loadgen"
	"github.com/commsec/communicator/internal/stack"
)

// load runs the whole measurement and prints the table on stdout.
func load(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	dir, err := os.MkdirTemp(o.dir, "commload-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	say := func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) }
	say("starting NATS (JetStream sync %s), keyserver, relay and gateway in %s", o.sync.String(), dir)
	s, err := loadgen.StartStack(ctx, dir, o.sync.Interval())
	if err != nil {
		return err
	}
	defer s.Close()
	f, err := prepare(ctx, s, o, say)
	defer f.Close()
	if err != nil {
		return err
	}
	return measure(ctx, s, f, o, stdout, say)
}

// prepare registers the clients, makes the groups and connects the
// clients; the fleet it returns is to be closed even on an error.
func prepare(ctx context.Context, s *stack.Stack, o *options, say func(string, ...any)) (*loadgen.Fleet, error) {
	t := time.Now()
	f, err := loadgen.Provision(ctx, s, loadgen.FleetConfig{Clients: o.clients, Groups: o.groups})
	if err != nil {
		return f, err
	}
	say("registered %d clients and made %d groups in %v", o.clients, o.groups, time.Since(t).Round(time.Millisecond))
	t = time.Now()
	logf := (&loadgen.LimitedLog{W: say, Max: 20}).Logf
	if err := f.Connect(ctx, s, logf); err != nil {
		return f, err
	}
	say("connected %d clients through the gateway at %s in %v", o.clients, s.GatewayAddr(), time.Since(t).Round(time.Millisecond))
	return f, nil
}

// measure drives the load, then the raw phases, and prints the table.
func measure(ctx context.Context, s *stack.Stack, f *loadgen.Fleet, o *options, stdout io.Writer, say func(string, ...any)) error {
	nc, js, err := loadgen.Connect(s, "commload")
	if err != nil {
		return err
	}
	defer nc.Close()
	d, use, err := drive(ctx, s, f, o, say)
	if err != nil {
		return err
	}
	say("measuring raw JetStream on the same server (%v each phase)", o.rawDuration)
	raw, err := measureRaw(ctx, js, o)
	if err != nil {
		return err
	}
	report(stdout, o, d, use, raw)
	return ctx.Err()
}

// drive runs the load, under the CPU profiler if asked, then closes the
// clients. It also returns what the load cost.
func drive(ctx context.Context, s *stack.Stack, f *loadgen.Fleet, o *options, say func(string, ...any)) (*loadgen.Driver, usage, error) {
	before, err := takeSnapshot(s)
	if err != nil {
		return nil, usage{}, err
	}
	stop, err := startProfile(o.cpuprofile)
	if err != nil {
		return nil, usage{}, err
	}
	d := loadgen.NewDriver(f, loadgen.DriveConfig{Rate: o.rate, Size: o.size, Warmup: o.warmup, Duration: o.duration, Say: say})
	d.Run(ctx)
	if err := stop(); err != nil {
		return nil, usage{}, err
	}
	after, err := takeSnapshot(s)
	d.Stop()
	f.Close()
	if err == nil {
		err = ctx.Err()
	}
	return d, usageBetween(before, after), err
}

// rawResult is raw JetStream on the same server: the async-publish rate,
// the publish→consume latency at a moderate rate, and the relay's storage
// pattern alone.
type rawResult struct {
	rate     loadgen.Rate
	latency  loadgen.Histogram
	consumed uint64
	latRate  float64
	pattern  loadgen.Pattern
}

// measureRaw runs the raw phases on a scratch stream.
func measureRaw(ctx context.Context, js jetstream.JetStream, o *options) (*rawResult, error) {
	raw, err := loadgen.NewRaw(ctx, js, o.size)
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	r := &rawResult{latRate: o.rawRate}
	if r.rate, err = raw.PublishRate(ctx, o.rawDuration); err != nil {
		return nil, err
	}
	if r.consumed, err = raw.PublishConsume(ctx, o.rawRate, o.rawDuration, &r.latency); err != nil {
		return nil, err
	}
	r.pattern = raw.RelayPattern(ctx, o.clients, o.rawDuration)
	return r, nil
}

func startProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}
