package main

// The failover figure: the relays share the partitions by leases in a
// KV bucket (COMM_RELAYS, TTL streams.DefaultLeaseTTL, renewed every
// third of it; relay/partitions.go). Two numbers show what that costs:
// how long the partitions of a relay killed without releasing its
// leases stay unowned, and how long a relay that joins takes to hold its
// share.

import (
	"context"
	"fmt"
	"time"

	"github.com/commsec/communicator/internal/clusterstack"
	"github.com/commsec/communicator/internal/loadgen"
	"github.com/commsec/communicator/streams"
)

// failoverLimit bounds each wait of the figure.
const failoverLimit = 60 * time.Second

func (r *runner) failover(ctx context.Context) error {
	s, err := r.startCluster(ctx, "failover", clusterSpec{shards: r.clusterShards(), relays: 2, gateways: 1})
	if err != nil {
		return err
	}
	defer s.Close()
	killed, survivor := s.Relays()[0], s.Relays()[1]
	share := streams.Partitions / 2
	balanced := func() bool { return len(killed.Owned()) == share && len(survivor.Owned()) == share && s.AllOwned() }
	if err := pollOwned(ctx, balanced); err != nil {
		return fmt.Errorf("failover: the two relays did not share the partitions: %w", err)
	}
	r.say("relay %s owns %d partitions, %s %d; killing %s (its connection closed, leases kept)",
		killed.ID(), len(killed.Owned()), survivor.ID(), len(survivor.Owned()), killed.ID())
	t := time.Now()
	killed.Kill()
	if err := pollOwned(ctx, func() bool { return len(survivor.Owned()) == streams.Partitions }); err != nil {
		return fmt.Errorf("failover: %s did not take every partition: %w", survivor.ID(), err)
	}
	fail := time.Since(t)
	took := len(survivor.Owned())
	r.say("%s owns all %d partitions after %v; a relay joins", survivor.ID(), streams.Partitions, fail.Round(time.Millisecond))
	t = time.Now()
	joined, err := s.AddRelay(ctx, "relay-joined", 2)
	if err != nil {
		return err
	}
	started := time.Since(t)
	if err := pollOwned(ctx, func() bool { return len(joined.Owned()) >= share && s.AllOwned() }); err != nil {
		return fmt.Errorf("failover: the joining relay did not reach its share: %w", err)
	}
	rebalance := time.Since(t)
	r.reportFailover(fail, rebalance, started, took, survivor, joined)
	return nil
}

func pollOwned(ctx context.Context, ok func() bool) error {
	return loadgen.Poll(ctx, failoverLimit, ok, "partitions not owned")
}

func (r *runner) reportFailover(fail, rebalance, started time.Duration, took int, survivor, joined *clusterstack.Relay) {
	ttl := streams.DefaultLeaseTTL
	r.add(newRow(fmt.Sprintf("relay failover: a killed relay's %d partitions all owned again (2 relays, leases not released)", streams.Partitions/2),
		secs(fail), fmt.Sprintf("%s the lease TTL, the earliest a lease can be taken", secs(ttl)), fail.Seconds()/ttl.Seconds(), goal{}))
	r.add(newRow(fmt.Sprintf("relay rebalancing: a joining relay holds its share of %d partitions", streams.Partitions/2),
		secs(rebalance), fmt.Sprintf("%s a renewal tick (TTL / 3)", secs(ttl/3)), rebalance.Seconds()/(ttl/3).Seconds(), goal{}))
	r.note("failover: relay-0 and relay-1 on nodes 0 and 1; relay-0's NATS connection closed at once (as kill -9 closes it), "+
		"its leases left to expire (COMM_RELAYS TTL %v, renewals every %v); the survivor then owned %d; "+
		"the joining relay on node 2 took %v to start (in the rebalancing time), then held %d, the survivor %d",
		ttl, (ttl / 3).Round(time.Millisecond), took, started.Round(time.Millisecond), len(joined.Owned()), len(survivor.Owned()))
}
