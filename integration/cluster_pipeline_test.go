//go:build docker

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/clientsdk"
	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/streams"
)

// TestClusterPipelinedFaults runs the compose stack the way a fleet uses
// it, under the faults that once made it lie to senders: 10 senders, 5
// on each gateway, each sending 20 messages a second without waiting for
// the answers, and a burst of 110 at once as each fault begins, so that
// more than 100 sends of each sender are in flight while the fault
// strikes; 10 receivers on the other gateway. The faults, one after the
// other, with the load running throughout:
//
//  1. the NATS node gateway-2 is attached to, cut off its network;
//  2. the COMM_ACCEPTED stream's leader cut off;
//  3. the stream's leader frozen (docker pause);
//  4. a relay frozen past its lease;
//  5. a relay cut off;
//  6. the keyserver killed (SIGKILL) in the middle of `ksctl group
//     rekey`, four times.
//
// A cut node or relay comes back with `docker network connect --alias`.
// Every message is followed: sent, answered (by verdict), stored (its
// counters in COMM_ACCEPTED), delivered. The closing lines must show no
// acknowledged message lost, none handed to an application twice, none
// stored although its sender was told it was refused, none refused at all
// (every sender is a member entitled to send: a refusal is a message a
// retry could have stored), and every ksctl command returning its outcome.
func TestClusterPipelinedFaults(t *testing.T) {
	if exec.Command("docker", "info").Run() != nil {
		t.Skip("no Docker engine answers")
	}
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	op := c.adminClient()
	pairs := c.makePairs(ctx, op, 10)
	load := newPipeline(t, pairs)
	load.start(ctx)
	time.Sleep(5 * time.Second) // steady state first

	t.Log("fault 1: the NATS node gateway-2 is attached to, cut off for 30 s")
	node := c.nodeOf("gateway-2")
	f1 := load.phase("node of gateway-2 cut")
	c.cutFor(node, 30*time.Second)
	f1.end()
	cut := load.answersWhile(f1, 1) // gateway-2's senders are the odd ones
	t.Logf("while gateway-2's node was cut off: %d answers to its senders, longest silence %.1f s", cut.answers, cut.silence.Seconds())
	load.settle(10 * time.Second)

	leader := c.streamLeader(ctx, streams.AcceptedStream)
	t.Logf("fault 2: the %s leader (%s) cut off for 20 s", streams.AcceptedStream, leader)
	f2 := load.phase("stream leader cut")
	c.cutFor(leader, 20*time.Second)
	f2.end()
	load.settle(10 * time.Second)

	leader = c.streamLeader(ctx, streams.AcceptedStream)
	t.Logf("fault 3: the %s leader (%s) frozen for 15 s", streams.AcceptedStream, leader)
	f3 := load.phase("stream leader paused")
	c.pauseFor(c.containers(leader)[0], 15*time.Second)
	f3.end()
	load.settle(10 * time.Second)

	relays := c.containers("relay")
	t.Log("fault 4: a relay frozen for 15 s, three times its lease")
	f4 := load.phase("relay paused past its lease")
	c.pauseFor(relays[0], 15*time.Second)
	f4.end()
	load.settle(5 * time.Second)

	t.Log("fault 5: a relay cut off for 15 s")
	f5 := load.phase("relay cut")
	c.cutFor(relays[1], 15*time.Second)
	f5.end()
	load.settle(5 * time.Second)

	t.Log("fault 6: the keyserver killed in the middle of a rekey, four times")
	f6 := load.phase("keyserver killed mid-rekey")
	rekeys := c.rekeysInterrupted(ctx, "pair-0", 4)
	f6.end()
	load.settle(5 * time.Second)

	load.stop()
	load.wait(t, 5*time.Minute)
	stored := c.storedCounters(ctx)
	load.waitDelivered(t, stored, 2*time.Minute)

	r := load.report(stored)
	for _, line := range load.phaseLines() {
		t.Log(line)
	}
	lines := append(r.lines(), rekeys.lines()...)
	for _, line := range lines {
		t.Log(line)
		fmt.Println(line)
	}
	t.Logf("copies the receivers dropped as already handed over: %d", c.replays.Load())
	for _, line := range load.lostLines(stored, 60) {
		t.Log(line)
	}
	t.Logf("relay verdicts:\n%s", c.relayVerdicts())
	c.checkNoCounterTwice(ctx)
	c.audit(ctx, "pair-0") // fails the test if the log does not verify
	switch {
	case r.lost != 0 || r.twice != 0 || r.storedRefused != 0 || r.refused != 0:
		t.Fatal("the closing lines are not all zero")
	case r.unanswered != 0:
		t.Fatalf("%d sends never had an answer", r.unanswered)
	case r.storedUndelivered != 0:
		t.Fatalf("%d stored messages never reached their receiver", r.storedUndelivered)
	case r.minPeak < 100:
		t.Fatalf("a sender had at most %d sends in flight, want at least 100", r.minPeak)
	case cut.answers == 0:
		t.Fatal("gateway-2's senders had no answer while its NATS node was cut off: the gateway stayed on it")
	case rekeys.answered != len(rekeys.outputs) || rekeys.epochs != len(rekeys.outputs)+rekeys.recoveries:
		t.Fatalf("ksctl: %d of %d commands returned their outcome; the epoch advanced by %d, %d of them by recovery", rekeys.answered, len(rekeys.outputs), rekeys.epochs, rekeys.recoveries)
	}
}

// pipeline is the load: each pair's sender sends without waiting for its
// answers; each receiver counts what its application is handed.
type pipeline struct {
	t      *testing.T
	pairs  []pair
	ctx    context.Context
	begin  time.Time
	stopC  chan struct{}
	loops  sync.WaitGroup // the senders' tickers
	sends  sync.WaitGroup // every send until its answer
	seq    []atomic.Int64 // per sender
	flying []atomic.Int64 // sends the application waits for, per sender
	peak   []atomic.Int64 // the most sends on the wire at once, per sender

	mu        sync.Mutex
	msgs      map[string]*sentMsg
	delivered map[string]int // payload -> times handed over
	phases    []*faultPhase
}

type sentMsg struct {
	sender       int
	group        protocol.GroupID
	sentAt, done time.Time
	result       clientsdk.SendResult
	err          error
}

// counterKey names a stored message: in these groups of two, only the
// sender sends.
type counterKey struct {
	group   protocol.GroupID
	counter uint64
}

func newPipeline(t *testing.T, pairs []pair) *pipeline {
	p := &pipeline{t: t, pairs: pairs, stopC: make(chan struct{}), seq: make([]atomic.Int64, len(pairs)),
		flying: make([]atomic.Int64, len(pairs)), peak: make([]atomic.Int64, len(pairs)),
		msgs: map[string]*sentMsg{}, delivered: map[string]int{}}
	for _, pr := range pairs {
		go func() {
			for m := range pr.to.Messages() {
				p.mu.Lock()
				p.delivered[string(m.Payload)]++
				p.mu.Unlock()
			}
		}()
	}
	return p
}

// start begins each sender's 20 messages a second, and samples each
// sender's sends on the wire (sealed, waiting for their verdict).
func (p *pipeline) start(ctx context.Context) {
	p.ctx, p.begin = ctx, time.Now()
	p.every(20*time.Millisecond, func() {
		for i, pr := range p.pairs {
			p.peak[i].Store(max(p.peak[i].Load(), int64(pr.from.Waiting(pr.group))))
		}
	})
	for i := range p.pairs {
		p.every(50*time.Millisecond, func() { p.fire(i) })
	}
}

// every runs fn every d until stop.
func (p *pipeline) every(d time.Duration, fn func()) {
	p.loops.Add(1)
	go func() {
		defer p.loops.Done()
		tick := time.NewTicker(d)
		defer tick.Stop()
		for {
			select {
			case <-p.stopC:
				return
			case <-tick.C:
				fn()
			}
		}
	}()
}

// fire sends one message of sender i without waiting for its answer.
func (p *pipeline) fire(i int) {
	pr := p.pairs[i]
	id := fmt.Sprintf("%d/%d", i, p.seq[i].Add(1))
	m := &sentMsg{sender: i, group: pr.group, sentAt: time.Now()}
	p.mu.Lock()
	p.msgs[id] = m
	p.mu.Unlock()
	p.flying[i].Add(1)
	p.sends.Add(1)
	go func() {
		defer p.sends.Done()
		defer p.flying[i].Add(-1)
		sctx, cancel := context.WithTimeout(p.ctx, 10*time.Minute)
		defer cancel()
		r, err := pr.from.SendWithResult(sctx, pr.group, []byte(id))
		p.mu.Lock()
		defer p.mu.Unlock()
		m.done, m.result, m.err = time.Now(), r, err
	}()
}

// burst has every sender put n more sends in flight at once.
func (p *pipeline) burst(n int) {
	for i := range p.pairs {
		for range n {
			p.fire(i)
		}
	}
}

// faultPhase is the time a fault lasted, for the per-phase figures.
type faultPhase struct {
	name       string
	start, fin time.Time
}

func (f *faultPhase) end() { f.fin = time.Now() }

// phase marks a fault's start, with a burst of 110 sends per sender.
func (p *pipeline) phase(name string) *faultPhase {
	f := &faultPhase{name: name, start: time.Now()}
	p.mu.Lock()
	p.phases = append(p.phases, f)
	p.mu.Unlock()
	p.burst(110)
	return f
}

// progress is what the senders of one gateway got during a fault.
type progress struct {
	answers int           // verdicts received
	silence time.Duration // the longest time without one
}

// answersWhile counts the answers to the senders of gateway gw (sender i
// uses gateway i%2) during f, and the longest wait between two.
func (p *pipeline) answersWhile(f *faultPhase, gw int) progress {
	p.mu.Lock()
	var at []time.Time
	for _, m := range p.msgs {
		if m.sender%2 == gw && !m.done.IsZero() && !m.done.Before(f.start) && !m.done.After(f.fin) {
			at = append(at, m.done)
		}
	}
	p.mu.Unlock()
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	pr := progress{answers: len(at)}
	prev := f.start
	for _, t := range append(at, f.fin) {
		pr.silence = max(pr.silence, t.Sub(prev))
		prev = t
	}
	return pr
}

// settle lets the load run after a fault.
func (p *pipeline) settle(d time.Duration) { time.Sleep(d) }

func (p *pipeline) stop() {
	close(p.stopC)
	p.loops.Wait()
}

// wait waits for every send's answer.
func (p *pipeline) wait(t *testing.T, within time.Duration) {
	done := make(chan struct{})
	go func() { p.sends.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(within):
		t.Fatalf("sends still waiting for an answer after %v", within)
	}
}

// waitDelivered waits until every stored message reached its receiver.
func (p *pipeline) waitDelivered(t *testing.T, stored map[counterKey]bool, within time.Duration) {
	deadline := time.Now().Add(within)
	for {
		r := p.report(stored)
		if r.storedUndelivered == 0 && r.lost == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// pipelineReport is the closing count.
type pipelineReport struct {
	sent, accepted, duplicate, refused, unanswered int
	refusedBy                                      map[string]int
	stored, delivered, lost, twice                 int
	storedRefused, storedUndelivered               int
	retries                                        int
	minPeak, maxPeak                               int64
}

func (p *pipeline) report(stored map[counterKey]bool) pipelineReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := pipelineReport{refusedBy: map[string]int{}, minPeak: p.peak[0].Load()}
	for i := range p.peak {
		r.minPeak, r.maxPeak = min(r.minPeak, p.peak[i].Load()), max(r.maxPeak, p.peak[i].Load())
	}
	for id, m := range p.msgs {
		r.sent++
		r.retries += m.result.Retries
		isStored := false
		for _, n := range m.result.Counters {
			isStored = isStored || stored[counterKey{m.group, n}]
		}
		times := p.delivered[id]
		if isStored {
			r.stored++
		}
		if times > 0 {
			r.delivered++
		}
		if times > 1 {
			r.twice++
		}
		refused := errors.Is(m.err, clientsdk.ErrRefused)
		switch {
		case m.err == nil && m.result.Status == channel.StatusDuplicate:
			r.duplicate++
		case m.err == nil:
			r.accepted++
		case refused:
			r.refused++
			r.refusedBy[m.err.Error()]++
		default:
			r.unanswered++
		}
		if m.err == nil && times == 0 {
			r.lost++
		}
		if refused && isStored {
			r.storedRefused++
		}
		if isStored && times == 0 {
			r.storedUndelivered++
		}
	}
	return r
}

func (r pipelineReport) lines() []string {
	return []string{
		fmt.Sprintf("pipelined faults: sent %d; answered accepted %d, duplicate %d, refused %d %v, unanswered %d; retries along the way %d; stored %d; delivered %d; sends on the wire at once (sealed, unanswered) peaked per sender at %d to %d",
			r.sent, r.accepted, r.duplicate, r.refused, r.refusedBy, r.unanswered, r.retries, r.stored, r.delivered, r.minPeak, r.maxPeak),
		fmt.Sprintf("acknowledged but lost: %d", r.lost),
		fmt.Sprintf("delivered twice to an application: %d", r.twice),
		fmt.Sprintf("stored but refused: %d", r.storedRefused),
		fmt.Sprintf("refused that a retry could have stored: %d (every sender is a member entitled to send)", r.refused),
		fmt.Sprintf("stored but never delivered: %d", r.storedUndelivered),
	}
}

// lostLines name up to n messages stored or acknowledged but never
// delivered: which sender, when (seconds since the load began), in which
// fault, with which counters, and whether stored; so that a loss can be
// traced in the services' logs.
func (p *pipeline) lostLines(stored map[counterKey]bool, n int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for id, m := range p.msgs {
		if p.delivered[id] > 0 || m.err != nil && !slices.ContainsFunc(m.result.Counters, func(c uint64) bool { return stored[counterKey{m.group, c}] }) {
			continue
		}
		phase := "-"
		for _, f := range p.phases {
			if !m.sentAt.Before(f.start) && !m.sentAt.After(f.fin) {
				phase = f.name
			}
		}
		var st []bool
		for _, c := range m.result.Counters {
			st = append(st, stored[counterKey{m.group, c}])
		}
		out = append(out, fmt.Sprintf("undelivered %s: group %s sent at %.3f s (%s), answered after %.3f s, status %d err %v, counters %v stored %v, retries %d",
			id, m.group, m.sentAt.Sub(p.begin).Seconds(), phase, m.done.Sub(m.sentAt).Seconds(), m.result.Status, m.err, m.result.Counters, st, m.result.Retries))
	}
	slices.Sort(out)
	if len(out) > n {
		out = append(out[:n], fmt.Sprintf("… and %d more", len(out)-n))
	}
	return out
}

// phaseLines are the per-fault figures: the messages sent while it
// lasted, and their slowest answer.
func (p *pipeline) phaseLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, f := range p.phases {
		n, slowest := 0, time.Duration(0)
		for _, m := range p.msgs {
			if m.sentAt.Before(f.start) || m.sentAt.After(f.fin) {
				continue
			}
			n++
			slowest = max(slowest, m.done.Sub(m.sentAt))
		}
		out = append(out, fmt.Sprintf("fault %q (%.0f s): %d messages sent, slowest answer %.1f s", f.name, f.fin.Sub(f.start).Seconds(), n, slowest.Seconds()))
	}
	return out
}

// network is the project's compose network.
func (c *cluster) network() string { return c.project + "_default" }

// serviceOf is the compose service of a container.
func (c *cluster) serviceOf(id string) string {
	return strings.TrimSpace(c.run("docker", "inspect", "--format", `{{index .Config.Labels "com.docker.compose.service"}}`, id))
}

// cutFor disconnects a container (a service name or an id) from the
// project's network for d, then connects it again under its service's
// name, as a repaired link would.
func (c *cluster) cutFor(container string, d time.Duration) {
	c.t.Helper()
	id := container
	if ids := c.containers(container); len(ids) == 1 {
		id = ids[0]
	}
	service := c.serviceOf(id)
	c.run("docker", "network", "disconnect", c.network(), id)
	time.Sleep(d)
	c.run("docker", "network", "connect", "--alias", service, c.network(), id)
}

// pauseFor freezes a container for d.
func (c *cluster) pauseFor(id string, d time.Duration) {
	c.t.Helper()
	c.run("docker", "pause", id)
	time.Sleep(d)
	c.run("docker", "unpause", id)
}

// ipOf is a container's address on the project's network.
func (c *cluster) ipOf(id string) string {
	return strings.TrimSpace(c.run("docker", "inspect", "--format",
		fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).IPAddress}}`, c.network()), id))
}

// nodeOf is the NATS node (service name) a service's container is
// connected to, found in the nodes' connection lists.
func (c *cluster) nodeOf(service string) string {
	c.t.Helper()
	ip := c.ipOf(c.containers(service)[0])
	for _, node := range []string{"nats-1", "nats-2", "nats-3"} {
		out, err := exec.Command("docker", "exec", c.containers(node)[0], "/httpprobe", "--print", "http://127.0.0.1:8222/connz?limit=1024").Output()
		if err != nil {
			c.t.Fatalf("connz of %s: %v", node, err)
		}
		var connz struct {
			Connections []struct {
				IP string `json:"ip"`
			} `json:"connections"`
		}
		if err := json.Unmarshal(out, &connz); err != nil {
			c.t.Fatalf("connz of %s: %v", node, err)
		}
		for _, conn := range connz.Connections {
			if conn.IP == ip {
				return node
			}
		}
	}
	c.t.Fatalf("%s (%s) is connected to no NATS node", service, ip)
	return ""
}

// streamLeader is the NATS node leading a stream.
func (c *cluster) streamLeader(ctx context.Context, name string) string {
	c.t.Helper()
	js, _ := jetstream.New(c.mustConnect("comm-keyserver", "keyserver"))
	for deadline := time.Now().Add(time.Minute); ; {
		s, err := js.Stream(ctx, name)
		if err == nil {
			if info, err := s.Info(ctx); err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
				return info.Cluster.Leader
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("stream %s has no leader", name)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// storedCounters reads every (group, counter) in COMM_ACCEPTED.
func (c *cluster) storedCounters(ctx context.Context) map[counterKey]bool {
	out := map[counterKey]bool{}
	c.eachAccepted(ctx, func(h envelope.Header) { out[counterKey{h.Group, h.Counter}] = true })
	return out
}

// rekeyReport is what the interrupted rekeys returned.
type rekeyReport struct {
	outputs    []string
	answered   int // commands that exited 0 and named the epoch they opened
	epochs     int // how far the group's epoch moved
	recoveries int // epochs the keyserver opened itself, recovering from a kill
}

func (r rekeyReport) lines() []string {
	out := []string{fmt.Sprintf("ksctl commands that returned their outcome: %d of %d; the group's epoch moved by %d, of which %d by the keyserver's recovery (a kill before the key's escrow)", r.answered, len(r.outputs), r.epochs, r.recoveries)}
	for i, o := range r.outputs {
		out = append(out, fmt.Sprintf("  ksctl group rekey #%d: %s", i+1, strings.TrimSpace(o)))
	}
	return out
}

var epochOpened = regexp.MustCompile(`epoch \d+ opened`)

// rekeysInterrupted runs `ksctl group rekey` n times from the host, and
// kills the keyserver (SIGKILL) in the middle of each: as soon as the
// rekey's event is in the log, before its bundles and its answer are
// sure to be out; then starts it again. ksctl must return the rekey's
// outcome, and each command must move the epoch by one (the keyserver's
// own recovery epochs, counted from the audit, aside).
func (c *cluster) rekeysInterrupted(ctx context.Context, group string, n int) rekeyReport {
	c.t.Helper()
	js, _ := jetstream.New(c.mustConnect("comm-keyserver", "keyserver"))
	before := c.epochOf(ctx, group)
	var r rekeyReport
	ks := c.containers("keyserver")[0]
	for i := range n {
		c.waitContainerHealthy(ks, 2*time.Minute) // an operator's next command comes after the last one returned
		seq := c.lastSeq(ctx, js, streams.Events, 30*time.Second)
		cmd := exec.CommandContext(ctx, filepath.Join(c.root, "deploy", ".build", "ksctl"),
			"--nats", c.urls(), "--nats-ca", c.caFile(), "--nats-creds", filepath.Join(c.secrets, "nats", "admin.nk"),
			"--operator-key", filepath.Join(c.secrets, "keys", "operator.key"),
			"group", "rekey", group, "--reason", fmt.Sprintf("drill %d under fire", i+1))
		cmd.Dir = c.root
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			c.t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); ; {
			if last, ok := c.tryLastSeq(ctx, js, streams.Events); ok && last != seq {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("rekey %d: no event within 30 s\n%s", i+1, out.String())
			}
			time.Sleep(2 * time.Millisecond)
		}
		c.run("docker", "kill", "-s", "KILL", ks)
		time.Sleep(time.Second)
		c.run("docker", "start", ks)
		err := cmd.Wait()
		r.outputs = append(r.outputs, out.String())
		if err == nil && epochOpened.MatchString(out.String()) {
			r.answered++
		} else {
			c.t.Logf("rekey %d: %v\n%s", i+1, err, out.String())
		}
	}
	c.waitHealthy(2 * time.Minute)
	r.epochs = int(c.epochOf(ctx, group) - before)
	// A kill after the rekey's event and before its key's escrow is
	// written costs the group one more epoch, opened by the keyserver's
	// recovery at its start (keyserver/recover.go), by design.
	for _, ch := range c.auditReport(ctx, group).Changes {
		if ch.By == "keyserver" && strings.HasPrefix(ch.Reason, "recovery: ") {
			r.recoveries++
		}
	}
	return r
}

// waitContainerHealthy waits until a container's health check passes.
func (c *cluster) waitContainerHealthy(id string, within time.Duration) {
	c.t.Helper()
	for deadline := time.Now().Add(within); ; {
		state := strings.TrimSpace(c.run("docker", "inspect", "--format", "{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}", id))
		if state == "running/healthy" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("container %s: %s after %v", id[:12], state, within)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// lastSeq is a stream's last sequence, read again for up to within while
// the cluster does not answer.
func (c *cluster) lastSeq(ctx context.Context, js jetstream.JetStream, stream string, within time.Duration) uint64 {
	c.t.Helper()
	for deadline := time.Now().Add(within); ; {
		if seq, ok := c.tryLastSeq(ctx, js, stream); ok {
			return seq
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("stream %s: no answer to INFO within %v", stream, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tryLastSeq is a stream's last sequence, and false when the cluster did
// not answer: a read that failed is not a sequence number.
func (c *cluster) tryLastSeq(ctx context.Context, js jetstream.JetStream, stream string) (uint64, bool) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, false
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, false
	}
	return info.State.LastSeq, true
}

// epochOf is a group's current epoch, from the log.
func (c *cluster) epochOf(ctx context.Context, name string) protocol.Epoch {
	c.t.Helper()
	var e protocol.Epoch
	c.projection(ctx).Read(func(s *fold.State) {
		if g, ok := s.GroupByName(name); ok {
			e = g.Epoch
		}
	})
	return e
}
