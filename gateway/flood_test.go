//go:build linux

// Linux accepts any 127/8 source address on loopback, which the floods
// below dial from.

package gateway_test

import (
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/internal/flood"
	"github.com/commsec/communicator/internal/stacktest"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/handshake"
)

const (
	floodConns = 2000
	// legitTimeout bounds a legitimate client's dial and handshake: the
	// test asserts success within it, never a time.
	legitTimeout = 2 * time.Second
	legitTries   = 5
)

// TestHandshakeFloodFairness: while 2,000 connections that never finish
// M1 press on a gateway with its default caps, from one source address
// or from 16, a registered client from another address completes each of
// 5 handshakes within its own 2 s handshake timeout, at the first try.
// (Before per-source fairness the flood's 256 took every slot for 10 s,
// and everybody else was told busy.)
func TestHandshakeFloodFairness(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 connections")
	}
	raiseFileLimit(t, 2*floodConns+1000) // both ends of each, and the stack
	s := stacktest.New(t)
	legit := s.Register("legit")
	for _, sources := range []int{1, 16} {
		t.Run(fmt.Sprintf("%d sources", sources), func(t *testing.T) {
			gw := s.AddGateway(gateway.Config{}) // the default caps and deadlines
			f := flood.Start(gw.Addr().String(), floodConns, sources)
			defer f.Stop()
			waitFull(t, f, gw, floodConns)
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 200)}}
			cfg := handshake.ClientConfig{Identity: legit.ID.Sig, ServerKey: s.GW.Public()}
			for i := range legitTries {
				waitTurnedAway(t, gw) // the flood has the whole table again
				start := time.Now()
				d.Deadline = start.Add(legitTimeout)
				nc, err := d.Dial("tcp", gw.Addr().String())
				dialled := time.Since(start)
				if err == nil {
					cfg.Timeout = time.Until(d.Deadline)
					var conn *channel.Conn
					if conn, err = handshake.Client(nc, cfg); err == nil {
						conn.Close()
					}
				}
				if err != nil {
					refused, _, _ := gw.Metrics.Snapshot()
					t.Fatalf("handshake %d under the flood from %d sources: %v (dial took %v, all %v; gateway refusals %v)",
						i, sources, err, dialled, time.Since(start), refused)
				}
				t.Logf("handshake %d under the flood: %v", i, time.Since(start).Round(time.Microsecond))
			}
			refused, _, _ := gw.Metrics.Snapshot()
			t.Logf("flood connections made %d; gateway refusals by reason %v", f.Dialed(), refused)
			if refused["evicted"] == 0 || refused["busy_source"] == 0 {
				t.Errorf("refusals %v: want busy_source for the flood and evictions for the client", refused)
			}
		})
	}
}

// waitFull polls until every flood connection has been dialled once and
// the gateway has turned away all but a table's worth (256) of them.
func waitFull(t *testing.T, f *flood.Flood, gw *gateway.Gateway, n int) {
	t.Helper()
	before := flood.TurnedAway(gw)
	for start := time.Now(); f.Dialed() < int64(n) || flood.TurnedAway(gw)-before < uint64(n-256); {
		if time.Since(start) > time.Minute { // a guard, not a measure
			t.Fatalf("after a minute, %d flood connections made, %d turned away", f.Dialed(), flood.TurnedAway(gw)-before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitTurnedAway polls until the gateway turns one more connection away:
// then its table is full.
func waitTurnedAway(t *testing.T, gw *gateway.Gateway) {
	t.Helper()
	mark := flood.TurnedAway(gw)
	for start := time.Now(); flood.TurnedAway(gw) == mark; time.Sleep(time.Millisecond) {
		if time.Since(start) > time.Minute { // a guard, not a measure
			t.Fatal("the gateway turned nobody away for a minute")
		}
	}
}

// raiseFileLimit raises the soft limit on open files to the hard one if
// it is under need, and skips the test if even that is too low.
func raiseFileLimit(t *testing.T, need uint64) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	if l.Cur >= need {
		return
	}
	if l.Max < need {
		t.Skipf("the hard limit on open files is %d; the test needs %d", l.Max, need)
	}
	old := l
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}
