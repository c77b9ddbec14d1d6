// Package natstest starts a real nats-server with JetStream inside a test:
// a random loopback port and a t.TempDir() data directory, shut down when
// the test ends.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/commsec/communicator/internal/embeddednats"
)

// Start starts a server for t and returns it with one connection over TCP.
func Start(t testing.TB) (*embeddednats.Server, *nats.Conn) {
	t.Helper()
	s := StartAt(t, t.TempDir())
	return s, Connect(t, s)
}

// StartFast is Start with fsync every minute instead of on every write, for
// tests that write thousands of messages and are not about durability.
func StartFast(t testing.TB) (*embeddednats.Server, *nats.Conn) {
	t.Helper()
	s := start(t, embeddednats.Options{DataDir: t.TempDir(), SyncInterval: time.Minute})
	return s, Connect(t, s)
}

// StartAt starts a server on an existing data directory, to test restarts.
func StartAt(t testing.TB, dir string) *embeddednats.Server {
	t.Helper()
	return start(t, embeddednats.Options{DataDir: dir})
}

func start(t testing.TB, o embeddednats.Options) *embeddednats.Server {
	t.Helper()
	o.Listen, o.Name = "127.0.0.1:0", "test"
	s, err := embeddednats.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// Connect opens a TCP connection to s, closed when the test ends.
func Connect(t testing.TB, s *embeddednats.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// CheckFor polls f until it returns nil or d passes, like nats-server's
// checkFor: tests poll, they do not sleep.
func CheckFor(t testing.TB, d, every time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %v: %v", d, err)
		}
		time.Sleep(every)
	}
}
