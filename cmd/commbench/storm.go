package main

// The storm figure: every client of a gateway loses its connection at
// once when the gateway restarts, and comes back (clientsdk spreads the
// first attempts over ReconnectSpread). Measured: the time until every
// client is connected again, then until each has a fresh message (or,
// for each group's sender, its acknowledgement), and the JetStream API
// requests the reconnections cost, counted on the servers.

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/commsec/communicator/clientsdk"
	"github.com/commsec/communicator/internal/clusterstack"
	"github.com/commsec/communicator/internal/loadgen"
)

// Limits of the storm figure.
const (
	stormClusterFiles = 2048              // descriptors for the 3 nodes, their routes and files, and the services
	stormWait         = 3 * time.Minute   // bound on each phase
	stormQuiet        = 2 * time.Second   // the API baseline before the restart
	stormBuffer       = 16                // each client's Messages buffer
	stormTag          = "commbench-storm" // the fresh messages' payload, after the stamp
)

// stormClient is one client and what the figure watches of it.
type stormClient struct {
	m      *loadgen.Member
	source net.IP // its loopback source address
	c      *clientsdk.Client
	dials  atomic.Int32
	fresh  atomic.Int64 // when it received a fresh message, or had its own accepted (UnixNano; 0: not yet)
}

func (sc *stormClient) gotFresh() {
	sc.fresh.CompareAndSwap(0, time.Now().UnixNano())
}

func (r *runner) storm(ctx context.Context) error {
	n, why := r.stormSize()
	s, err := r.startCluster(ctx, "storm", clusterSpec{shards: r.clusterShards(), relays: 1, gateways: 1})
	if err != nil {
		return err
	}
	defer s.Close()
	cs, err := r.stormFleet(ctx, s, n)
	defer closeStorm(cs)
	if err != nil {
		return err
	}
	if err := r.warmStorm(ctx, cs); err != nil {
		return err
	}
	res, err := r.restartStorm(ctx, s, cs)
	if err != nil {
		return err
	}
	r.reportStorm(n, why, res)
	return nil
}

// stormSize is the number of clients that fit under the limit on open
// files: each connection is two descriptors in this process (client and
// gateway ends).
func (r *runner) stormSize() (int, string) {
	n := r.p.stormClients
	limit, err := raiseFileLimit()
	if err != nil {
		return min(n, 1000), fmt.Sprintf("limit on open files unknown (%v)", err)
	}
	fits := (int(limit) - stormClusterFiles) / 2
	if fits >= n {
		return n, ""
	}
	fits -= fits % r.p.stormGroupSize
	return fits, fmt.Sprintf("not %s: the limit on open files is %s and each connection takes 2 in this process", count(n), count(int(limit)))
}

func (r *runner) stormFleet(ctx context.Context, s *clusterstack.Stack, n int) ([]*stormClient, error) {
	t := time.Now()
	f, err := loadgen.Provision(ctx, s.Via(0), loadgen.FleetConfig{Prefix: "st-", Clients: n, Groups: max(n/r.p.stormGroupSize, 1)})
	if err != nil {
		return nil, err
	}
	r.say("registered %d clients in %d groups in %v", n, len(f.Groups), time.Since(t).Round(time.Millisecond))
	t = time.Now()
	cs := make([]*stormClient, len(f.Members))
	sem := make(chan struct{}, 32)
	var failed atomic.Value
	var wg sync.WaitGroup
	for i, m := range f.Members {
		cs[i] = &stormClient{m: m, source: stormSource(i)}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := cs[i].connect(ctx, s); err != nil {
				failed.Store(err)
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return cs, err
	}
	r.say("connected %d clients in %v", n, time.Since(t).Round(time.Millisecond))
	return cs, nil
}

// warmStorm has each group's sender send one message, received by the
// other members, before the restart: caught-up clients of a running
// system have had a delivery since their group's last bundle, and
// acknowledging it is how a client confirms its bundles (the gateway
// then reads none at its reconnect). The senders never confirm theirs.
func (r *runner) warmStorm(ctx context.Context, cs []*stormClient) error {
	t := time.Now()
	if err := sendFresh(ctx, cs); err != nil {
		return err
	}
	if err := loadgen.Poll(ctx, stormWait, func() bool { return allFresh(cs) }, "not every client got its warm-up message"); err != nil {
		return err
	}
	for _, sc := range cs {
		sc.fresh.Store(0)
	}
	// The clients acknowledge within 100 ms (clientsdk's ack ticker).
	if !loadgen.SleepUntil(ctx, time.Now().Add(500*time.Millisecond)) {
		return ctx.Err()
	}
	r.say("one message received in each group before the restart, in %v", time.Since(t).Round(time.Millisecond))
	return nil
}

func (sc *stormClient) connect(ctx context.Context, s *clusterstack.Stack) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: sc.source}}
	c, err := clientsdk.Dial(ctx, clientsdk.Config{Addr: s.Via(0).GatewayAddr(), Identity: sc.m.ID,
		ServerKey: s.Keys().Gateway.Public(), KeyserverKey: s.Keys().Keyserver.Public(), Buffer: stormBuffer,
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			sc.dials.Add(1)
			return d.DialContext(ctx, "tcp", addr)
		}})
	if err != nil {
		return fmt.Errorf("storm: client %s: %w", sc.m.Name, err)
	}
	sc.c = c
	go sc.receive()
	if err := c.WaitKey(ctx, sc.m.Group); err != nil {
		return fmt.Errorf("storm: client %s: no key for its group: %w", sc.m.Name, err)
	}
	return nil
}

// stormSources is the number of loopback source addresses the clients
// are spread over, as devices come from many addresses: from one, the
// gateway's defence against floods of handshakes (16 per source once its
// table of 256 is full, docs/PROTOCOL.md 4.9) would turn most of them
// away as busy_source.
const stormSources = 200

// stormSource is client i's source address, 127.0.1.1 to 127.0.1.200
// (apart from the flood figure's 127.0.0.x).
func stormSource(i int) net.IP { return net.IPv4(127, 0, 1, byte(1+i%stormSources)) }

func (sc *stormClient) receive() {
	for msg := range sc.c.Messages() {
		if len(msg.Payload) >= loadgen.StampSize && string(msg.Payload[loadgen.StampSize:]) == stormTag {
			sc.gotFresh()
		}
	}
}

func closeStorm(cs []*stormClient) {
	var wg sync.WaitGroup
	for _, sc := range cs {
		if sc != nil && sc.c != nil {
			wg.Go(func() { sc.c.Close() })
		}
	}
	wg.Wait()
}

// stormResult is what restartStorm measured.
type stormResult struct {
	restart    time.Duration     // Close and Start of the gateway
	connected  time.Duration     // from the restart until every client is connected
	settled    time.Duration     // from the restart until the API requests are back to the baseline
	delivering time.Duration     // from the restart until every client has a fresh message
	fresh      loadgen.Histogram // from the fresh messages' sending to each client's
	dials      int               // the clients' connection attempts after the restart
	handshakes float64           // the restarted gateway's completed handshakes
	refused    string            // its refused handshakes, by reason
	dropped    string            // the connections it dropped, by reason
	api        stormAPI
	// The restarted gateway's own count: its API calls for the connects,
	// the connects, and the clients it loaded from its snapshot.
	gwCalls, gwConnects, snapshot uint64
}

// stormAPI counts JetStream API requests, summed over the nodes.
type stormAPI struct {
	baseline float64 // per second, with nothing happening
	start    uint64  // during the gateway's Close and Start
	storm    uint64  // from the end of Start until the requests are back to the baseline
	stormFor time.Duration
	fresh    uint64 // while the fresh messages were delivered
}

// perReconnect is the API requests per reconnection: the storm's, less
// the baseline over its duration.
func (a stormAPI) perReconnect(n int) float64 {
	return max(float64(a.storm)-a.baseline*a.stormFor.Seconds(), 0) / float64(n)
}

func (r *runner) restartStorm(ctx context.Context, s *clusterstack.Stack, cs []*stormClient) (*stormResult, error) {
	res := &stormResult{}
	a0, err := s.Cluster.APITotal()
	if err != nil {
		return nil, err
	}
	if !loadgen.SleepUntil(ctx, time.Now().Add(stormQuiet)) {
		return nil, ctx.Err()
	}
	a1, _ := s.Cluster.APITotal()
	res.api.baseline = float64(a1-a0) / stormQuiet.Seconds()
	r.say("restarting the gateway with %d clients (API baseline %.1f requests/s)", len(cs), res.api.baseline)
	t0 := time.Now()
	if err := s.RestartGateway(ctx, 0); err != nil {
		return nil, err
	}
	res.restart = time.Since(t0)
	a2, _ := s.Cluster.APITotal()
	res.api.start = a2 - a1
	t1 := time.Now()
	g := s.Gateways[0]
	connected := func() bool {
		return metricValue(g.Metrics, "comm_gateway_connections") >= float64(len(cs)) && allRedialed(cs)
	}
	stop := r.progress(func() string {
		return fmt.Sprintf("storm: %.0f of %d connected", metricValue(g.Metrics, "comm_gateway_connections"), len(cs))
	})
	err = loadgen.Poll(ctx, stormWait, connected, "not every client reconnected")
	stop()
	if err != nil {
		return nil, err
	}
	res.connected = time.Since(t0)
	if err := r.settleAPI(ctx, s, res.api.baseline); err != nil {
		return nil, err
	}
	c := g.Gateway.Metrics.Costs()
	res.gwCalls, res.gwConnects, res.snapshot = c.ConnectAPICalls, c.Connects, c.SnapshotLoaded
	a3, _ := s.Cluster.APITotal()
	res.api.storm, res.api.stormFor = a3-a2, time.Since(t1)
	res.settled = time.Since(t0)
	r.say("all connected after %v, API requests back to the baseline after %v; one fresh message in each group",
		res.connected.Round(time.Millisecond), res.settled.Round(time.Millisecond))
	t2 := time.Now()
	if err := sendFresh(ctx, cs); err != nil {
		return nil, err
	}
	if err := loadgen.Poll(ctx, stormWait, func() bool { return allFresh(cs) }, "not every client got its fresh message"); err != nil {
		return nil, err
	}
	res.delivering = time.Since(t0)
	a4, _ := s.Cluster.APITotal()
	res.api.fresh = a4 - a3
	for _, sc := range cs {
		res.dials += int(sc.dials.Load()) - 1
	}
	res.handshakes = metricValue(g.Metrics, "comm_gateway_handshakes_total")
	res.refused = metricByLabel(g.Metrics, "comm_gateway_handshakes_refused_total")
	res.dropped = metricByLabel(g.Metrics, "comm_gateway_connections_dropped_total")
	for _, sc := range cs {
		res.fresh.Record(time.Unix(0, sc.fresh.Load()).Sub(t2))
	}
	return res, nil
}

// settleAPI waits, once every client is connected, until the nodes'
// API requests are back to about the baseline rate (the reconnections'
// catch-ups may still run): 500 ms at most 1.5 times the baseline and 10
// a second.
func (r *runner) settleAPI(ctx context.Context, s *clusterstack.Stack, baseline float64) error {
	const window = 500 * time.Millisecond
	limit := (1.5*baseline + 10) * window.Seconds()
	last, _ := s.Cluster.APITotal()
	return loadgen.Poll(ctx, stormWait, func() bool {
		if !loadgen.SleepUntil(ctx, time.Now().Add(window)) {
			return true
		}
		now, _ := s.Cluster.APITotal()
		quiet := float64(now-last) <= limit
		last = now
		return quiet
	}, "the JetStream API requests did not settle")
}

func allRedialed(cs []*stormClient) bool {
	for _, sc := range cs {
		if sc.dials.Load() < 2 {
			return false
		}
	}
	return true
}

func allFresh(cs []*stormClient) bool {
	for _, sc := range cs {
		if sc.fresh.Load() == 0 {
			return false
		}
	}
	return true
}

// sendFresh has the first member of each group send one message: the
// others receive it, the sender has its acknowledgement.
func sendFresh(ctx context.Context, cs []*stormClient) error {
	senders := map[string]*stormClient{}
	for _, sc := range cs {
		if _, ok := senders[sc.m.Group.String()]; !ok {
			senders[sc.m.Group.String()] = sc
		}
	}
	errs := make(chan error, len(senders))
	for _, sc := range senders {
		go func() {
			payload := make([]byte, loadgen.StampSize, loadgen.StampSize+len(stormTag))
			sctx, cancel := context.WithTimeout(ctx, stormWait)
			defer cancel()
			err := sc.c.Send(sctx, sc.m.Group, append(payload, stormTag...))
			if err == nil {
				sc.gotFresh()
			}
			errs <- err
		}()
	}
	for range senders {
		if err := <-errs; err != nil {
			return fmt.Errorf("storm: a fresh message: %w", err)
		}
	}
	return nil
}

func (r *runner) reportStorm(n int, why string, res *stormResult) {
	per := res.api.perReconnect(n)
	r.add(row{figure: fmt.Sprintf("reconnect storm: %s caught-up clients of a restarted gateway, JetStream API requests per reconnection", count(n)),
		ours:  fmt.Sprintf("%.2f; all connected %s, all delivering %s", per, secs(res.connected), secs(res.delivering)),
		bound: "—", ratio: nanRatio, goal: goal{limit: 1, unit: "per reconnection"}, checked: per})
	if why != "" {
		r.note("storm: %s", why)
	}
	r.note("storm: the clients connect from %d loopback addresses (127.0.1.x), as devices come from many; the "+
		"gateway's Close and Start took %v and %d API requests (not counted per reconnection); from then "+
		"until the requests were back to the baseline, %v after the restart (every client connected after %v), the 3 "+
		"nodes served %d, less a baseline of %.1f/s measured for %v before the restart; clients spread their first "+
		"attempt over %v (clientsdk.DefaultReconnectSpread); all delivering: until each client had one message sent "+
		"after that (one per group of %d, the sender counting its acknowledgement): from their sending to each "+
		"client's, %s, and %d API requests meanwhile; the clients dialled %d times after the restart and the gateway "+
		"completed %.0f handshakes (refused: %s; connections dropped: %s); before the restart each group's sender "+
		"sent one message, which its members acknowledged (confirming their bundles); the restarted gateway loaded "+
		"%d clients from its snapshot and counted %d API calls for %d connects",
		stormSources, res.restart.Round(time.Millisecond), res.api.start, res.settled.Round(time.Millisecond),
		res.connected.Round(time.Millisecond), res.api.storm, res.api.baseline, stormQuiet,
		clientsdk.DefaultReconnectSpread, r.p.stormGroupSize, quantiles3(&res.fresh), res.api.fresh, res.dials, res.handshakes,
		res.refused, res.dropped, res.snapshot, res.gwCalls, res.gwConnects)
}
