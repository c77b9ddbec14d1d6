package streams

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// On a cluster each shard's writes go to its stream's leader, so the
// shards only add write capacity if their leaders are on different nodes.
// JetStream places a new stream's leader where it likes, often on the
// same node for streams created one after the other; SpreadLeaders then
// moves leaders, one step-down at a time, from a node that leads two or
// more shards to a node that leads none. A step-down names the node it
// prefers ($JS.API.STREAM.LEADER.STEPDOWN.<stream> with
// {"placement":{"preferred":"<server>"}}, nats-server 2.11 or later),
// which must hold a replica of the stream.

// LeaderMove is one shard's leadership moved by SpreadLeaders.
type LeaderMove struct {
	Stream, From, To string
}

// stepDownWait bounds the wait for one step-down's new leader.
const stepDownWait = 5 * time.Second

// SpreadLeaders moves the leaders of k's shards until no node leads two
// while another leads none, or until ctx ends. It is best effort: a
// step-down the cluster refuses ends it with the error, and the moves
// made so far. A stream with one replica has no leader to move.
func SpreadLeaders(ctx context.Context, js jetstream.JetStream, k Shards) ([]LeaderMove, error) {
	var moves []LeaderMove
	for range 2 * int(k) { // each move takes a node out of the idle ones; a few more for lost elections
		clusters, err := shardClusters(ctx, js, k)
		if err != nil {
			return moves, err
		}
		move, ok := nextMove(k.All(), clusters)
		if !ok {
			return moves, nil
		}
		if err := stepDown(ctx, js, move); err != nil {
			return moves, err
		}
		if err := waitLeader(ctx, js, move); err != nil {
			return moves, err
		}
		moves = append(moves, move)
	}
	return moves, nil
}

// shardClusters reads each shard's leader and peers from its leader.
func shardClusters(ctx context.Context, js jetstream.JetStream, k Shards) (map[string]*jetstream.ClusterInfo, error) {
	out := map[string]*jetstream.ClusterInfo{}
	for _, name := range k.All() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("streams: leaders: %s: %w", name, err)
		}
		out[name] = s.CachedInfo().Cluster
	}
	return out, nil
}

// nextMove picks a shard whose leader leads another shard too and one of
// whose replicas is on a node that leads none (ok false: none, the
// leaders are spread as far as the replicas allow).
func nextMove(names []string, clusters map[string]*jetstream.ClusterInfo) (LeaderMove, bool) {
	leads := map[string]int{}
	for _, name := range names {
		c := clusters[name]
		if c == nil || c.Leader == "" {
			continue
		}
		leads[c.Leader]++
		for _, p := range c.Replicas {
			leads[p.Name] += 0
		}
	}
	for _, name := range names {
		c := clusters[name]
		if c == nil || leads[c.Leader] < 2 {
			continue
		}
		for _, p := range c.Replicas {
			if leads[p.Name] == 0 && p.Current && !p.Offline {
				return LeaderMove{Stream: name, From: c.Leader, To: p.Name}, true
			}
		}
	}
	return LeaderMove{}, false
}

type stepDownRequest struct {
	Placement struct {
		Preferred string `json:"preferred"`
	} `json:"placement"`
}

type stepDownResponse struct {
	Success bool                `json:"success"`
	Error   *jetstream.APIError `json:"error"`
}

// stepDown asks move.Stream's leader to hand over to move.To.
func stepDown(ctx context.Context, js jetstream.JetStream, move LeaderMove) error {
	var req stepDownRequest
	req.Placement.Preferred = move.To
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(ctx, stepDownWait)
	defer cancel()
	msg, err := js.Conn().RequestWithContext(ctx, apiPrefix(js)+"STREAM.LEADER.STEPDOWN."+move.Stream, body)
	if err != nil {
		return fmt.Errorf("streams: leaders: step-down of %s to %s: %w", move.Stream, move.To, err)
	}
	var resp stepDownResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("streams: leaders: step-down of %s: %w", move.Stream, err)
	}
	if resp.Error != nil {
		return fmt.Errorf("streams: leaders: step-down of %s to %s: %w", move.Stream, move.To, resp.Error)
	}
	if !resp.Success {
		return fmt.Errorf("streams: leaders: step-down of %s to %s: not done", move.Stream, move.To)
	}
	return nil
}

// waitLeader waits, up to stepDownWait, until move.Stream has a leader
// other than move.From (not necessarily move.To: the election may go
// elsewhere, and the next round sees where it went).
func waitLeader(ctx context.Context, js jetstream.JetStream, move LeaderMove) error {
	wait, cancel := context.WithTimeout(ctx, stepDownWait)
	defer cancel()
	for {
		if s, err := js.Stream(wait, move.Stream); err == nil {
			if c := s.CachedInfo().Cluster; c != nil && c.Leader != "" && c.Leader != move.From {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("streams: leaders: %s after its step-down: %w", move.Stream, ctx.Err())
		case <-wait.Done():
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// apiPrefix is js's JetStream API prefix (the default one unless js was
// made with another prefix or a domain).
func apiPrefix(js jetstream.JetStream) string {
	p := js.Options().APIPrefix
	if p == "" {
		return jetstream.DefaultAPIPrefix
	}
	if !strings.HasSuffix(p, ".") {
		p += "."
	}
	return p
}
