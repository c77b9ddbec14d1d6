package main

// The ingress figure: with interest routing (issue 14), a gateway
// receives only the messages of the groups its clients are in. Two
// gateways each serve half the clients, in disjoint groups; each one's
// live messages received are counted against all accepted.

import (
	"context"
	"fmt"
	"strings"

	"github.com/commsec/communicator/internal/clusterstack"
)

// gatewayMessagesIn is the gateway's counter of accepted messages
// received from the live feed.
const gatewayMessagesIn = "comm_gateway_messages_in_total"

// ingressCount is what a gateway received.
type ingressCount struct {
	live  float64 // gatewayMessagesIn (-1: no such metric)
	inMsg uint64  // every message on its NATS connection
}

func readIngress(g *clusterstack.Gateway) ingressCount {
	return ingressCount{live: metricValue(g.Metrics, gatewayMessagesIn), inMsg: g.Conn.Stats().InMsgs}
}

func (r *runner) ingress(ctx context.Context) error {
	s, err := r.startCluster(ctx, "ingress", clusterSpec{shards: r.clusterShards(), relays: 2, gateways: 2})
	if err != nil {
		return err
	}
	defer s.Close()
	half := r.p.ingressClients / 2
	fa, err := r.clusterFleet(ctx, s, 0, "a-", half, max(half/2, 1))
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := r.clusterFleet(ctx, s, 1, "b-", half, max(half/2, 1))
	if err != nil {
		return err
	}
	defer fb.Close()
	before := []ingressCount{readIngress(s.Gateways[0]), readIngress(s.Gateways[1])}
	d := r.drive(ctx, joinFleets(fa, fb), r.p.ingressRate, r.p.ingressDuration)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	total := float64(d.AcceptedAll())
	if total == 0 {
		return fmt.Errorf("ingress: no message accepted (%s)", d.Verdicts())
	}
	var worst float64
	var parts []string
	for i, g := range s.Gateways {
		after := readIngress(g)
		live := after.live - before[i].live
		if after.live < 0 {
			live = float64(after.inMsg - before[i].inMsg)
		}
		worst = max(worst, live/total)
		parts = append(parts, fmt.Sprintf("gateway %d: %.0f live (%.2f), %d NATS messages in all", i, live, live/total,
			after.inMsg-before[i].inMsg))
	}
	r.add(row{figure: fmt.Sprintf("per-gateway ingress, 2 gateways, %d clients in groups of 2, half on each: the larger share of all accepted",
		r.p.ingressClients), ours: fmt.Sprintf("%.2f of %.0f", worst, total), ratio: nanRatio,
		goal: goal{limit: 0.6, unit: "of all"}, checked: worst})
	r.note("ingress: %.0f msgs/s for %v after %v of warm-up, %s; counted over both phases: %s; live is the gateway's %s "+
		"(its NATS connection's messages in when it has none), the rest of its NATS messages are the relays' verdicts, "+
		"bundles and the event log",
		r.p.ingressRate, r.p.ingressDuration, r.p.satWarmup, d.Verdicts(), strings.Join(parts, "; "), gatewayMessagesIn)
	return nil
}
