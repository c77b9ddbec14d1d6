package jsprobe_test

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/commsec/communicator/internal/jsprobe"
	"github.com/commsec/communicator/internal/metrics"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/streams"
)

// fast probes every 50 ms, so that the tests take little time; the
// defaults are for production.
func fast(reg prometheus.Registerer, states chan<- jsprobe.State) jsprobe.Config {
	return jsprobe.Config{Stream: streams.Events, Interval: 50 * time.Millisecond, Timeout: 250 * time.Millisecond,
		Stale: 80 * time.Millisecond, Metrics: reg, Prefix: "comm_test", OnState: func(s jsprobe.State) { states <- s }}
}

// next waits for the probe's next change of state.
func next(t *testing.T, states <-chan jsprobe.State) jsprobe.State {
	t.Helper()
	select {
	case s := <-states:
		return s
	case <-time.After(30 * time.Second):
		t.Fatal("no change of state within 30 s")
	}
	return 0
}

// startReachable starts a probe of nc with cfg, closed when the test
// ends, and waits for its first state, reachable.
func startReachable(t *testing.T, nc *nats.Conn, cfg jsprobe.Config, states <-chan jsprobe.State) *jsprobe.Probe {
	t.Helper()
	p, err := jsprobe.Start(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	if s := next(t, states); s != jsprobe.Reachable {
		t.Fatalf("first state %v, want reachable", s)
	}
	return p
}

// failJetStream takes JetStream away from the probed stream's account on
// servers, in order, and waits for the probe's next state, failing.
func failJetStream(t *testing.T, states <-chan jsprobe.State, servers ...*natstest.Server) {
	t.Helper()
	for _, s := range servers {
		if err := s.DisableJetStream(streams.Events); err != nil {
			t.Fatal(err)
		}
	}
	if s := next(t, states); s != jsprobe.Failing {
		t.Fatalf("state %v, want failing", s)
	}
}

// TestProbeMoves: against real servers, a probe is reachable, fails once
// JetStream stops answering through its server (the account that holds
// the probed stream loses JetStream), finds that it answers through the
// next server of its list, moves the connection there, and is reachable
// again. Readiness follows; the move is counted.
func TestProbeMoves(t *testing.T) {
	a := natstest.Start(t)
	b := a.Twin(t)
	nc := dial(t, a, a.ClientURL()+","+b.ClientURL())
	reg := metrics.NewRegistry()
	states := make(chan jsprobe.State, 16)
	p := startReachable(t, nc, fast(reg, states), states)
	if err := p.Ready(); err != nil {
		t.Fatalf("ready: %v", err)
	}
	if err := a.DisableJetStream(streams.Events); err != nil {
		t.Fatal(err)
	}
	for _, want := range []jsprobe.State{jsprobe.Failing, jsprobe.Moved, jsprobe.Reachable} {
		if s := next(t, states); s != want {
			t.Fatalf("state %v, want %v", s, want)
		}
	}
	if got := nc.ConnectedUrl(); got != b.ClientURL() {
		t.Errorf("connected to %s, want the second server %s", got, b.ClientURL())
	}
	if p.Moves() != 1 {
		t.Errorf("moves %d, want 1", p.Moves())
	}
	if err := p.Ready(); err != nil {
		t.Errorf("ready after the move: %v", err)
	}
	text, err := metrics.Text(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"comm_test_jetstream_moves_total 1\n", "comm_test_jetstream_reachable 1\n"} {
		if !strings.Contains(text, w) {
			t.Errorf("metrics lack %q:\n%s", w, text)
		}
	}
}

// dial connects as the gateway to urls, in order, reconnecting forever.
func dial(t *testing.T, s *natstest.Server, urls string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(urls, s.Creds.Option(natsauth.Gateway), nats.DontRandomize(), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestProbeStaysWithoutAnotherNode: with one server, there is nowhere to
// move; the probe stays failing, not ready, and counts no move.
func TestProbeStaysWithoutAnotherNode(t *testing.T) {
	a := natstest.Start(t)
	nc := dial(t, a, a.ClientURL())
	states := make(chan jsprobe.State, 16)
	p := startReachable(t, nc, fast(nil, states), states)
	failJetStream(t, states, a)
	// Well past the three failures that look elsewhere: still failing, unmoved.
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error { return unreadyAfter(p, 10) })
	select {
	case s := <-states:
		t.Errorf("state changed to %v", s)
	default:
	}
	if p.Moves() != 0 || nc.ConnectedUrl() != a.ClientURL() {
		t.Errorf("moves %d, connected to %s", p.Moves(), nc.ConnectedUrl())
	}
}

// TestProbeStaysWhenNoNodeAnswers: when JetStream answers through no
// server of the list, the probe does not move the connection: hopping
// would not help.
func TestProbeStaysWhenNoNodeAnswers(t *testing.T) {
	a := natstest.Start(t)
	b := a.Twin(t)
	nc := dial(t, a, a.ClientURL()+","+b.ClientURL())
	states := make(chan jsprobe.State, 16)
	p := startReachable(t, nc, fast(nil, states), states)
	failJetStream(t, states, b, a)
	// Three looks elsewhere, all in vain.
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error { return unreadyAfter(p, 9) })
	if p.Moves() != 0 || nc.ConnectedUrl() != a.ClientURL() || p.State() != jsprobe.Failing {
		t.Errorf("moves %d, connected to %s, state %v", p.Moves(), nc.ConnectedUrl(), p.State())
	}
}

// TestReadyGrace: a reachable probe whose probes start failing stays
// ready until Failures of them failed in a row.
func TestReadyGrace(t *testing.T) {
	a := natstest.Start(t)
	nc := dial(t, a, a.ClientURL())
	states := make(chan jsprobe.State, 16)
	cfg := fast(nil, states)
	cfg.Interval = 500 * time.Millisecond // the first failure's state is read well before the second
	p := startReachable(t, nc, cfg, states)
	failJetStream(t, states, a)
	if err := p.Ready(); err != nil {
		t.Errorf("not ready after one failed probe: %v", err)
	}
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		return unreadyAfter(p, 3)
	})
}

// unreadyAfter is nil once p is not ready after at least n failed probes.
func unreadyAfter(p *jsprobe.Probe, n int) error {
	err := p.Ready()
	if err == nil {
		return errors.New("ready")
	}
	m := regexp.MustCompile(`^JetStream unreachable through NATS node .* after (\d+) failed probes`).FindStringSubmatch(err.Error())
	if m == nil {
		return fmt.Errorf("ready: %v", err)
	}
	if got, _ := strconv.Atoi(m[1]); got < n {
		return fmt.Errorf("after %d failed probes, want %d", got, n)
	}
	return nil
}

// TestConfig: a probe needs a stream, a prefix for the metrics it
// registers, and a Stale shorter than the failures before a look
// elsewhere.
func TestConfig(t *testing.T) {
	_, nc := natstest.Open(t)
	for _, c := range []jsprobe.Config{
		{},
		{Stream: "S", Metrics: metrics.NewRegistry()},
		{Stream: "S", Stale: 3 * time.Second},
	} {
		if p, err := jsprobe.Start(nc, c); err == nil {
			p.Close()
			t.Errorf("%+v: started", c)
		}
	}
}

// TestProbeNotReadyWhileDisconnected: a probe of a connection that is
// down says so.
func TestProbeNotReadyWhileDisconnected(t *testing.T) {
	a := natstest.Start(t)
	nc := dial(t, a, a.ClientURL())
	states := make(chan jsprobe.State, 16)
	p := startReachable(t, nc, fast(nil, states), states)
	a.Shutdown()
	if s := next(t, states); s != jsprobe.Unknown && s != jsprobe.Failing {
		t.Fatalf("state %v after the server stopped", s)
	}
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if p.State() != jsprobe.Unknown {
			return errors.New("not unknown yet")
		}
		return nil
	})
	if err := p.Ready(); err == nil {
		t.Error("ready while disconnected")
	}
}
