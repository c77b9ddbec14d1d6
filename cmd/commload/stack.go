package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/internal/stack"
	"github.com/commsec/communicator/streams"
)

// startStack starts commstack's one-machine stack (embedded NATS, the
// keyserver, one relay, one gateway) in dir, every listener on a free
// loopback port, and waits until the relay owns every partition.
func startStack(ctx context.Context, dir string, syncInterval time.Duration) (*stack.Stack, error) {
	s, err := stack.Start(ctx, stack.Config{DataDir: dir, Gateway: "127.0.0.1:0", NATSListen: "127.0.0.1:0",
		HTTP: "127.0.0.1:0", SyncInterval: syncInterval})
	if err != nil {
		return nil, err
	}
	owned := func() bool { return len(s.Relay().Owned()) == streams.Partitions }
	if err := poll(ctx, 30*time.Second, owned, "the relay did not claim every partition"); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// measureConn connects to the stack's NATS server over its loopback
// listener, for the measurements (the stack's own parts use in-process
// connections, which internal/stack does not hand out).
func measureConn(s *stack.Stack) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(s.NATSURL(), nats.Name("commload"), nats.Timeout(10*time.Second))
	if err != nil {
		return nil, nil, fmt.Errorf("NATS %s: %w", s.NATSURL(), err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// poll checks ok every 20 ms until it holds, d passes or ctx ends.
func poll(ctx context.Context, d time.Duration, ok func() bool, what string) error {
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s within %v", what, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
