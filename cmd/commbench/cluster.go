package main

// What the cluster figures of issue 14 share (shards, ingress, storm,
// fanout5k, failover): a Communicator on an in-process 3-node JetStream
// cluster (package clusterstack), each figure on a cluster of its own,
// started in the run's temporary directory and removed after it.

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commsec/communicator/internal/clusterstack"
	"github.com/commsec/communicator/internal/loadgen"
	"github.com/commsec/communicator/streams"
)

// clusterSpec is the parts of a figure's cluster.
type clusterSpec struct {
	shards           streams.Shards
	relays, gateways int
}

// startCluster starts a 3-node cluster with R3 streams for figure name.
func (r *runner) startCluster(ctx context.Context, name string, spec clusterSpec) (*clusterstack.Stack, error) {
	r.say("starting a 3-node JetStream cluster (R3, K = %d, %s), %d relays, %d gateways", spec.shards,
		r.o.syncPolicy(), spec.relays, spec.gateways)
	t := time.Now()
	r.clusterRuns++
	s, err := clusterstack.Start(ctx, clusterstack.Config{Dir: filepath.Join(r.dir, fmt.Sprintf("%s-%d", name, r.clusterRuns)),
		Shards: spec.shards, Relays: spec.relays, Gateways: spec.gateways, SyncInterval: r.o.sync.Interval()})
	if err != nil {
		return nil, err
	}
	r.say("cluster ready in %v", time.Since(t).Round(time.Millisecond))
	return s, nil
}

// clusterShards is K for the cluster figures that are not about K:
// streams.DefaultShards, or 1 if this build cannot create them (then
// noted once).
func (r *runner) clusterShards() streams.Shards {
	if clusterstack.ShardsSupported(streams.DefaultShards) {
		return streams.DefaultShards
	}
	if !r.noShardsNoted {
		r.noShardsNoted = true
		r.note("cluster figures: this build's NATS authorization (internal/natsauth) has no account for shards 1 to %d, "+
			"so the cluster figures ran with K = 1", streams.DefaultShards-1)
	}
	return 1
}

// clusterFleet registers clients in groups through the cluster's
// keyserver and connects them through gateway gw.
func (r *runner) clusterFleet(ctx context.Context, s *clusterstack.Stack, gw int, prefix string, clients, groups int) (*loadgen.Fleet, error) {
	t := time.Now()
	f, err := loadgen.Provision(ctx, s.Via(gw), loadgen.FleetConfig{Prefix: prefix, Clients: clients, Groups: groups})
	if err != nil {
		return nil, err
	}
	r.say("registered %d clients in %d groups in %v", clients, groups, time.Since(t).Round(time.Millisecond))
	if err := connectFleet(ctx, s.Via(gw), f, r.say); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// joinFleets drives several fleets as one.
func joinFleets(fs ...*loadgen.Fleet) *loadgen.Fleet {
	out := &loadgen.Fleet{}
	for _, f := range fs {
		out.Members = append(out.Members, f.Members...)
		out.Groups = append(out.Groups, f.Groups...)
	}
	return out
}

// metricValue sums the samples of metric name (a counter or a gauge) in
// reg; -1 if there is none.
func metricValue(reg prometheus.Gatherer, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		sum := 0.0
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
		return sum
	}
	return -1
}

// metricByLabel lists the non-zero samples of metric name in reg as
// "LABEL=VALUE COUNT", comma-separated ("none" if none).
func metricByLabel(reg prometheus.Gatherer, name string) string {
	mfs, err := reg.Gather()
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue()
			if v == 0 {
				continue
			}
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetValue())
			}
			parts = append(parts, fmt.Sprintf("%s %.0f", strings.Join(labels, "/"), v))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
