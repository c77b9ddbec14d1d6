package clusterstack

import (
	"testing"
	"time"

	"github.com/commsec/communicator/internal/loadgen"
)

// TestClusterStack starts the stack on 3 nodes with 2 relays and 2
// gateways, connects a client through each gateway, and checks that a
// killed relay's partitions go to the other.
func TestClusterStack(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster")
	}
	ctx := t.Context()
	s, err := Start(ctx, Config{Dir: t.TempDir(), Shards: 1, Relays: 2, Gateways: 2, SyncInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range s.Gateways {
		var _ loadgen.Target = s.Via(i)
		f, err := loadgen.Provision(ctx, s.Via(i), loadgen.FleetConfig{Prefix: string(rune('a' + i)), Clients: 2, Groups: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Connect(ctx, s.Via(i), t.Logf); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	s.Relays()[0].Kill()
	if err := s.WaitOwned(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}
