// Package loadgen is what the load tools share (cmd/commload, which drives
// the message path, and cmd/commbench, which sets each figure beside its
// bound): the one-machine stack on loopback, a fleet of registered clients
// connected over TCP with clientsdk, a driver that sends group messages and
// records the latency from send to delivery, the raw JetStream phases that
// serve as bounds, and a lock-free latency histogram.
//
// Every loop here is bounded in count and in time.
package loadgen

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/internal/stack"
	"github.com/commsec/communicator/streams"
)

// StartStack starts commstack's one-machine stack (embedded NATS, the
// keyserver, one relay, one gateway) in dir, every listener on a free
// loopback port, and waits until the relay owns every partition.
// syncInterval 0 fsyncs every JetStream write.
func StartStack(ctx context.Context, dir string, syncInterval time.Duration) (*stack.Stack, error) {
	s, err := stack.Start(ctx, stack.Config{DataDir: dir, Gateway: "127.0.0.1:0", NATSListen: "127.0.0.1:0",
		HTTP: "127.0.0.1:0", SyncInterval: syncInterval, Scratch: true})
	if err != nil {
		return nil, err
	}
	owned := func() bool { return len(s.Relay().Owned()) == streams.Partitions }
	if err := Poll(ctx, 30*time.Second, owned, "the relay did not claim every partition"); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Connect connects to the stack's NATS server over its loopback listener,
// in the stack's scratch account, for the raw measurements on the same
// server (the stack's own parts use in-process connections as their
// roles, which internal/stack does not hand out).
func Connect(s *stack.Stack, name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(s.NATSURL(), nats.Name(name), nats.Timeout(10*time.Second), s.ScratchOption())
	if err != nil {
		return nil, nil, fmt.Errorf("loadgen: NATS %s: %w", s.NATSURL(), err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("loadgen: %w", err)
	}
	return nc, js, nil
}

// Poll checks ok every 20 ms until it holds, d passes or ctx ends.
func Poll(ctx context.Context, d time.Duration, ok func() bool, what string) error {
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("loadgen: %s within %v", what, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// SleepUntil waits until t; it reports false if ctx ended first.
func SleepUntil(ctx context.Context, t time.Time) bool {
	wait := time.Until(t)
	if wait <= 0 {
		return true
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
