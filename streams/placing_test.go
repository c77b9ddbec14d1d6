package streams

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// TestWhilePlacing: creating a stream on a cluster that has just started
// is asked again while JetStream has no peers for its replicas (a flake
// of the cluster tests), and not for any other error.
func TestWhilePlacing(t *testing.T) {
	noPeers := &jetstream.APIError{Code: 400, ErrorCode: errCodeNoPeers, Description: "no suitable peers for placement, peer offline"}
	calls := 0
	v, err := whilePlacing(t.Context(), func() (int, error) {
		if calls++; calls < 3 {
			return 0, noPeers
		}
		return 7, nil
	})
	if err != nil || v != 7 || calls != 3 {
		t.Fatalf("got %d, %v after %d calls; want 7 after 3", v, err, calls)
	}
	other := errors.New("streams: something else")
	calls = 0
	if _, err := whilePlacing(t.Context(), func() (int, error) { calls++; return 0, other }); !errors.Is(err, other) || calls != 1 {
		t.Fatalf("another error: %v after %d calls, want it at once", err, calls)
	}
}
