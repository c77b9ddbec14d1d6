package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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
	say("starting NATS (JetStream sync %s), keyserver, relay and gateway in %s", o.sync, dir)
	s, err := startStack(ctx, dir, o.syncInterval)
	if err != nil {
		return err
	}
	defer s.Close()
	f, err := prepare(ctx, s, o, say)
	defer f.close()
	if err != nil {
		return err
	}
	return measure(ctx, s, f, o, stdout, say)
}

// prepare registers the clients, makes the groups and connects the
// clients; the fleet it returns is to be closed even on an error.
func prepare(ctx context.Context, s *stack.Stack, o *options, say func(string, ...any)) (*fleet, error) {
	t := time.Now()
	f, err := provision(ctx, s, o.clients, o.groups)
	if err != nil {
		return f, err
	}
	say("registered %d clients and made %d groups in %v", o.clients, o.groups, time.Since(t).Round(time.Millisecond))
	t = time.Now()
	logf := (&limitedLog{w: say, max: 20}).logf
	if err := f.connect(ctx, s, logf); err != nil {
		return f, err
	}
	say("connected %d clients through the gateway at %s in %v", o.clients, s.GatewayAddr(), time.Since(t).Round(time.Millisecond))
	return f, nil
}

// measure drives the load, then the raw phases, and prints the table.
func measure(ctx context.Context, s *stack.Stack, f *fleet, o *options, stdout io.Writer, say func(string, ...any)) error {
	nc, js, err := measureConn(s)
	if err != nil {
		return err
	}
	defer nc.Close()
	d, use, err := drive(ctx, f, o, js, say)
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
func drive(ctx context.Context, f *fleet, o *options, js jetstream.JetStream, say func(string, ...any)) (*driver, usage, error) {
	before, err := takeSnapshot(ctx, js)
	if err != nil {
		return nil, usage{}, err
	}
	stop, err := startProfile(o.cpuprofile)
	if err != nil {
		return nil, usage{}, err
	}
	d := newDriver(f, o, say)
	d.run(ctx)
	if err := stop(); err != nil {
		return nil, usage{}, err
	}
	after, err := takeSnapshot(ctx, js)
	f.close()
	d.waitReceivers()
	if err == nil {
		err = ctx.Err()
	}
	return d, usageBetween(before, after), err
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

// limitedLog prints the clients' diagnostics up to max lines, then counts
// them silently.
type limitedLog struct {
	mu  sync.Mutex
	w   func(string, ...any)
	n   int
	max int
}

func (l *limitedLog) logf(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	switch {
	case l.n <= l.max:
		l.w("client: "+format, a...)
	case l.n == l.max+1:
		l.w("client: (further client diagnostics not shown)")
	}
}
