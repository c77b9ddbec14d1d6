//go:build linux

package gateway_test

import (
	"errors"
	"io"
	"maps"
	"net"
	"testing"
	"time"

	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/internal/stacktest"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/handshake"
	"github.com/commsec/communicator/protocol/keys"
)

// dialFrom connects to gw from 127.0.0.<host>.
func dialFrom(t *testing.T, gw *gateway.Gateway, host byte) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, host)}}
	nc, err := d.Dial("tcp", gw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// answer reads everything the gateway sends until it closes nc: nothing,
// or an error message (its code), after the given number of bytes.
func answer(t *testing.T, nc net.Conn, skip int) (code protocol.Code, n int) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(time.Minute)) // a guard; the gateway's deadlines are shorter
	got, err := io.ReadAll(nc)
	if err != nil {
		t.Fatalf("reading the gateway's answer: %v", err)
	}
	if len(got) <= skip {
		return 0, len(got)
	}
	_, err = handshake.Parse(got[skip:], handshake.TypeM2)
	var pe *protocol.PeerError
	if !errors.As(err, &pe) {
		t.Fatalf("gateway sent %x after %d bytes (%v), want an error message or nothing", got[skip:], skip, err)
	}
	return pe.Code, len(got)
}

// waitRefused polls until the gateway has counted want (at least) by
// reason, and returns the counts.
func waitRefused(t *testing.T, gw *gateway.Gateway, want map[string]uint64) map[string]uint64 {
	t.Helper()
	for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		refused, _, _ := gw.Metrics.Snapshot()
		ok := true
		for k, n := range want {
			ok = ok && refused[k] >= n
		}
		if ok {
			return refused
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("refusals %v, want at least %v", refused, want)
		}
	}
}

func m1(t *testing.T, gwKey *keys.SigningKey) []byte {
	k, _ := keys.GenerateSigningKey(nil)
	b, err := handshake.NewClientHandshake(k, gwKey.Public(), nil).WriteM1()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPreM1Refusals: a connection that sends no whole M1 is told code 5
// at the M1 deadline (m1_timeout); one that ends inside M1 is a
// truncated_message, one that ends before it closed_in_handshake; neither
// of those is answered.
func TestPreM1Refusals(t *testing.T) {
	s := stacktest.New(t)
	t.Run("deadline", func(t *testing.T) {
		gw := s.AddGateway(gateway.Config{M1Timeout: 100 * time.Millisecond, HandshakeTimeout: time.Hour})
		silent, partial := dialFrom(t, gw, 1), dialFrom(t, gw, 1)
		partial.Write(m1(t, s.GW)[:30])
		for name, nc := range map[string]net.Conn{"silent": silent, "partial": partial} {
			if code, _ := answer(t, nc, 0); code != protocol.CodeTimeout {
				t.Errorf("%s connection told %v, want timeout", name, code)
			}
		}
		want := map[string]uint64{"m1_timeout": 2}
		if refused := waitRefused(t, gw, want); !maps.Equal(refused, want) {
			t.Errorf("refusals %v, want %v", refused, want)
		}
	})
	t.Run("end of stream", func(t *testing.T) {
		// An M1 deadline of an hour: these must end by their stream alone.
		gw := s.AddGateway(gateway.Config{M1Timeout: time.Hour, HandshakeTimeout: time.Hour})
		truncated, closed := dialFrom(t, gw, 1), dialFrom(t, gw, 1)
		truncated.Write(m1(t, s.GW)[:30])
		truncated.(*net.TCPConn).CloseWrite()
		closed.(*net.TCPConn).CloseWrite()
		for name, nc := range map[string]net.Conn{"truncated": truncated, "closed": closed} {
			if code, n := answer(t, nc, 0); n != 0 {
				t.Errorf("%s connection told %v, want nothing", name, code)
			}
		}
		want := map[string]uint64{"truncated_message": 1, "closed_in_handshake": 1}
		if refused := waitRefused(t, gw, want); !maps.Equal(refused, want) {
			t.Errorf("refusals %v, want %v", refused, want)
		}
	})
}

// TestEviction: with room for 3 handshakes, 2 per source, a connection
// from a new source evicts the oldest handshake of the source holding
// the most: first one waiting for M1 (told busy), then one past M1 (just
// closed after M2 and M3). A full source's next connection is told busy
// (busy_source), and so is anyone once no source holds two more than it
// would (busy).
func TestEviction(t *testing.T) {
	s := stacktest.New(t)
	gw := s.AddGateway(gateway.Config{MaxHandshakes: 3, MaxHandshakesPerSource: 2, HandshakeTimeout: time.Hour,
		M1Timeout: time.Hour})
	ready := func(want map[string]uint64) map[string]uint64 { return waitRefused(t, gw, want) }
	// Source 1 takes the table while it has room: one silent, two past M1.
	silent := dialFrom(t, gw, 1)
	past := []net.Conn{dialFrom(t, gw, 1), dialFrom(t, gw, 1)}
	for _, nc := range past {
		nc.Write(m1(t, s.GW))
		nc.SetReadDeadline(time.Now().Add(time.Minute))
		if _, err := io.ReadFull(nc, make([]byte, handshake.KeyMessageSize+handshake.SigMessageSize)); err != nil {
			t.Fatalf("reading M2 and M3: %v", err)
		}
	}
	if code, _ := answer(t, dialFrom(t, gw, 1), 0); code != protocol.CodeBusy {
		t.Fatalf("source 1's fourth connection told %v, want busy", code)
	}
	ready(map[string]uint64{"busy_source": 1})
	// Source 2 evicts the one waiting for M1, which is told busy...
	second := dialFrom(t, gw, 2)
	if code, _ := answer(t, silent, 0); code != protocol.CodeBusy {
		t.Fatalf("evicted connection told %v, want busy", code)
	}
	// ... then, holding 1 against source 1's 2, nothing: busy.
	if code, _ := answer(t, dialFrom(t, gw, 2), 0); code != protocol.CodeBusy {
		t.Fatalf("source 2's second connection told %v, want busy", code)
	}
	ready(map[string]uint64{"busy": 1})
	// Source 3 evicts the older handshake past M1, which is just closed.
	third := dialFrom(t, gw, 3)
	if code, n := answer(t, past[0], 0); n != 0 {
		t.Fatalf("evicted handshake past M1 told %v after M3, want nothing", code)
	}
	refused := ready(map[string]uint64{"evicted": 2})
	if want := map[string]uint64{"busy_source": 1, "busy": 1, "evicted": 2}; !maps.Equal(refused, want) {
		t.Errorf("refusals %v, want %v", refused, want)
	}
	second.Close()
	third.Close()
}
