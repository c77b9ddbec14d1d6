package integration

import (
	"errors"
	"testing"
	"time"

	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/internal/stacktest"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/streams"
)

// TestBundlesUnavailable: when the gateway cannot read a client's key
// bundles, it does not leave the client connected without its keys: it
// tells it "unavailable" (code busy: reconnect later) and closes. (Alice
// is in a group whose bundle she never confirmed: the gateway must read;
// a client in no group needs no bundle, and none is read.)
func TestBundlesUnavailable(t *testing.T) {
	s := stacktest.New(t)
	s.AddGateway(gateway.Config{})
	alice := s.Register("alice")
	s.Group("ops", alice)
	s.Sync()
	if err := s.NATS.DisableJetStream(streams.Bundles); err != nil { // the bundles' account
		t.Fatal(err)
	}
	conn := rawConn(t, s, alice, 0)
	conn.NetConn().SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := conn.ReadFrame()
		if err != nil {
			t.Fatalf("connection ended without an Error frame: %v", err)
		}
		if f.Type != channel.TypeError {
			continue
		}
		code, err := channel.ParseError(f.Body)
		if err != nil || code != protocol.CodeBusy {
			t.Fatalf("Error frame code %d (%v), want %d (busy)", code, err, protocol.CodeBusy)
		}
		break
	}
	if _, err := conn.ReadFrame(); err == nil || errors.Is(err, protocol.ErrReplayedFrame) {
		t.Fatalf("connection still open after the Error frame: %v", err)
	}
	_, dropped, _ := s.Gateways[0].Metrics.Snapshot()
	if dropped["bundles_unavailable"] != 1 {
		t.Errorf("drops by reason %v, want bundles_unavailable 1", dropped)
	}
}
