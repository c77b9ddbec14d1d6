//go:build docker

// The fault tests of the docker compose deployment: the full stack on a
// three-node NATS cluster, with relays killed, a NATS node stopped and the
// whole stack restarted, and the least-privilege permissions probed.
// .ci/run runs them whenever a Docker engine answers:
//
//	go test -tags docker -run TestCluster -v -timeout 25m ./integration
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/clientsdk"
	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/service"
	"github.com/commsec/communicator/keyserver/admin"
	"github.com/commsec/communicator/keyserver/audit"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

// cluster is one docker compose project of the deployment.
type cluster struct {
	t           *testing.T
	root        string
	project     string
	secrets     string
	env         []string
	natsURL     [3]string // each node's published port on the host, over TLS
	gateway     [2]string
	clientLines atomic.Int64 // lines of the clients' diagnostics logged
	replays     atomic.Int64 // copies the clients dropped as replays
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startCluster(t *testing.T) *cluster {
	root, _ := filepath.Abs("..")
	c := &cluster{t: t, root: root, project: fmt.Sprintf("commfault%d", time.Now().Unix()%100000), secrets: t.TempDir()}
	ports := [5]int{freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)}
	for i := range c.natsURL {
		c.natsURL[i] = fmt.Sprintf("tls://127.0.0.1:%d", ports[i])
	}
	c.gateway = [2]string{fmt.Sprintf("127.0.0.1:%d", ports[3]), fmt.Sprintf("127.0.0.1:%d", ports[4])}
	c.env = append(os.Environ(), "COMM_SECRETS="+c.secrets,
		fmt.Sprintf("COMM_NATS_PORT=%d", ports[0]), fmt.Sprintf("COMM_NATS_PORT2=%d", ports[1]), fmt.Sprintf("COMM_NATS_PORT3=%d", ports[2]),
		fmt.Sprintf("COMM_GATEWAY1_PORT=%d", ports[3]), fmt.Sprintf("COMM_GATEWAY2_PORT=%d", ports[4]))
	c.run("deploy/build-images")
	c.checkInit(c.run("deploy/init"))
	t.Cleanup(c.down)
	c.compose("up", "-d", "--scale", "relay=3")
	c.waitHealthy(3 * time.Minute)
	c.checkContainersNonRoot()
	return c
}

func (c *cluster) run(name string, args ...string) string {
	c.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = c.root, c.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// compose runs docker compose (the plugin if present, else docker-compose).
func (c *cluster) compose(args ...string) string {
	c.t.Helper()
	base := []string{"-p", c.project, "-f", "docker-compose.yml"}
	if exec.Command("docker", "compose", "version").Run() == nil {
		return c.run("docker", append(append([]string{"compose"}, base...), args...)...)
	}
	return c.run("docker-compose", append(base, args...)...)
}

func (c *cluster) down() {
	if c.t.Failed() {
		// The gateways' first: the services' lines together pass the
		// limit, and a delivery failure is read in theirs.
		c.t.Logf("gateway logs:\n%s", tail(c.composeQuiet("logs", "--no-color", "--tail", "80", "gateway-1", "gateway-2"), 20000))
		c.t.Logf("logs:\n%s", tail(c.composeQuiet("logs", "--no-color", "--tail", "40"), 20000))
	}
	c.composeQuiet("down", "-v", "--remove-orphans")
}

func (c *cluster) composeQuiet(args ...string) string {
	base := []string{"-p", c.project, "-f", "docker-compose.yml"}
	cmd := exec.Command("docker-compose", append(base, args...)...)
	if exec.Command("docker", "compose", "version").Run() == nil {
		cmd = exec.Command("docker", append(append([]string{"compose"}, base...), args...)...)
	}
	cmd.Dir, cmd.Env = c.root, c.env
	out, _ := cmd.CombinedOutput()
	return string(out)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// containers lists the project's container ids of a service.
func (c *cluster) containers(service string) []string {
	out := c.run("docker", "ps", "-q", "--filter", "label=com.docker.compose.project="+c.project,
		"--filter", "label=com.docker.compose.service="+service)
	return strings.Fields(out)
}

// waitHealthy waits until every container of the project reports healthy.
func (c *cluster) waitHealthy(within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ids := strings.Fields(c.run("docker", "ps", "-aq", "--filter", "label=com.docker.compose.project="+c.project))
		unhealthy := 0
		for _, id := range ids {
			state := strings.TrimSpace(c.run("docker", "inspect", "--format", "{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}", id))
			if state != "running/healthy" {
				unhealthy++
			}
		}
		if len(ids) >= 8 && unhealthy == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%d of %d containers not healthy after %v", unhealthy, len(ids), within)
		}
		time.Sleep(time.Second)
	}
}

// urls is the comma-separated list of the nodes' published URLs.
func (c *cluster) urls() string { return strings.Join(c.natsURL[:], ",") }

func (c *cluster) caFile() string { return filepath.Join(c.secrets, "nats", "ca.pem") }

// connect opens a NATS connection with a role's credentials, over TLS
// verified against comminit's CA, to any of the nodes.
func (c *cluster) connect(name, role string, more ...nats.Option) (*nats.Conn, error) {
	opts, err := service.NATSClient{Creds: filepath.Join(c.secrets, "nats", role+".nk"), CA: c.caFile()}.Options(name)
	if err != nil {
		return nil, err
	}
	opts = append(opts, nats.Timeout(10*time.Second), nats.MaxReconnects(-1))
	return nats.Connect(c.urls(), append(opts, more...)...)
}

func (c *cluster) mustConnect(name, role string) *nats.Conn {
	c.t.Helper()
	nc, err := c.connect(name, role)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

func (c *cluster) readKey(name string, kind keys.Kind) [32]byte {
	c.t.Helper()
	data, err := os.ReadFile(filepath.Join(c.secrets, "keys", name))
	if err != nil {
		c.t.Fatal(err)
	}
	pub, err := keys.DecodePublicKey(data, kind)
	if err != nil {
		c.t.Fatal(err)
	}
	return pub
}

// tally counts what the test clients did and saw.
type tally struct {
	sent, acked, refused, failed, delivered, duplicates atomic.Int64
	mu                                                  sync.Mutex
	seen                                                map[string]bool
}

func (t *tally) deliver(payload string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen[payload] {
		t.duplicates.Add(1)
		return
	}
	t.seen[payload] = true
	t.delivered.Add(1)
}

// pair is a sender on one gateway and a receiver on the other, alone in a group.
type pair struct {
	group    protocol.GroupID
	from, to *clientsdk.Client
}

func TestClusterFaults(t *testing.T) {
	if exec.Command("docker", "info").Run() != nil {
		t.Skip("no Docker engine answers")
	}
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	t.Log("phase 0: TLS on every node, for clients and routes")
	c.checkTLS()
	op := c.adminClient()
	pairs := c.makePairs(ctx, op, 4)
	tl := &tally{seen: map[string]bool{}}
	for _, p := range pairs {
		go receive(p.to, tl)
	}

	t.Log("phase 1: load on both gateways, kill -9 one of three relays mid-stream")
	relays := c.containers("relay")
	if len(relays) != 3 {
		t.Fatalf("%d relays running, want 3", len(relays))
	}
	exchange(ctx, t, pairs, tl, "p1", 60, func() { c.run("docker", "kill", "-s", "KILL", relays[0]) })
	waitDelivered(t, tl)
	c.run("docker", "start", relays[0]) // the crashed relay comes back and takes its share again

	t.Log("phase 2: stop one NATS node; admin changes and messages continue; it rejoins")
	c.compose("stop", "nats-2")
	c.checkKsctlFromHost(c.natsURL[1], c.natsURL[0], c.natsURL[2])
	events := c.adminChanges(ctx, op)
	exchange(ctx, t, pairs, tl, "p2", 20, nil)
	c.compose("start", "nats-2")
	c.waitHealthy(3 * time.Minute)
	c.checkReplicasCurrent(ctx)
	waitDelivered(t, tl)
	before := c.audit(ctx, "pair-0")
	c.checkEventsPresent(ctx, events)

	t.Log("phase 3: restart the whole stack; state rebuilt by replay; the audit is unchanged")
	c.compose("stop")
	c.compose("start")
	c.waitHealthy(3 * time.Minute)
	c.checkSnapshotsLoaded()
	if after := c.audit(ctx, "pair-0"); after != before {
		t.Fatalf("audit after the restart differs:\nbefore %s\nafter  %s", before, after)
	}
	exchange(ctx, t, pairs, tl, "p3", 10, nil)
	waitDelivered(t, tl)

	c.checkNoCounterTwice(ctx)
	t.Log("phase 4: permissions (last: the rows that may write leave records that are not the Communicator's)")
	c.checkPermissions(ctx)
	summary := fmt.Sprintf("cluster figures: messages sent %d, acknowledged %d, delivered %d, refused %d, send errors %d, duplicates delivered %d, duplicates accepted 0",
		tl.sent.Load(), tl.acked.Load(), tl.delivered.Load(), tl.refused.Load(), tl.failed.Load(), tl.duplicates.Load())
	t.Log(summary)
	fmt.Println(summary)
	verdicts := c.relayVerdicts()
	t.Logf("relay verdicts:\n%s", verdicts)
	if tl.duplicates.Load() != 0 || tl.delivered.Load() != tl.acked.Load() {
		t.Fatal("an acknowledged message was lost or delivered twice")
	}
	if tl.refused.Load() != 0 {
		t.Fatalf("%d messages of members were refused:\n%s", tl.refused.Load(), verdicts)
	}
}

// checkSnapshotsLoaded checks that each gateway, stopped gracefully with
// the stack, saved its recent clients' cursors under its name and loaded
// them when it started again: the restart's reconnects went through the
// snapshot (gateway/snapshot.go), and the messages the phase after it
// counts went through that path.
func (c *cluster) checkSnapshotsLoaded() {
	c.t.Helper()
	for _, svc := range []string{"gateway-1", "gateway-2"} {
		ids := c.containers(svc)
		if len(ids) != 1 {
			c.t.Fatalf("%d containers of %s running, want 1", len(ids), svc)
		}
		logs := c.run("docker", "logs", ids[0])
		if !strings.Contains(logs, `"cursor snapshot saved"`) || !strings.Contains(logs, `"cursor snapshot loaded"`) {
			c.t.Errorf("%s did not save and load its cursor snapshot over the restart:\n%s", svc, tail(logs, 4000))
		}
	}
}

// relayVerdicts reads the verdict counters of every running relay.
func (c *cluster) relayVerdicts() string {
	var b strings.Builder
	for _, id := range c.containers("relay") {
		out, err := exec.Command("docker", "exec", id, "/httpprobe", "--print", "http://127.0.0.1:9101/metrics").Output()
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", id[:12], err)
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "comm_relay_verdicts_total") {
				fmt.Fprintf(&b, "%s %s\n", id[:12], line)
			}
		}
	}
	return b.String()
}

func (c *cluster) adminClient() *admin.Client {
	c.t.Helper()
	data, err := keys.ReadFile(filepath.Join(c.secrets, "keys", "operator.key"))
	if err != nil {
		c.t.Fatal(err)
	}
	key, err := keys.DecodeSigningKey(data, keys.KindOperatorPrivate)
	if err != nil {
		c.t.Fatal(err)
	}
	return &admin.Client{NC: c.mustConnect("ksctl", "admin"), Operator: key}
}

// makePairs registers 2n clients and n groups of two through the admin
// API, and connects each pair's sender and receiver to different gateways.
func (c *cluster) makePairs(ctx context.Context, op *admin.Client, n int) []pair {
	c.t.Helper()
	gwKey, ksKey := c.readKey("gateway.pub", keys.KindServerPublic), c.readKey("keyserver.pub", keys.KindKeyserverPublic)
	var pairs []pair
	for i := range n {
		from, to := c.newClient(ctx, op, fmt.Sprintf("s%d", i)), c.newClient(ctx, op, fmt.Sprintf("r%d", i))
		r, err := op.Do(ctx, admin.OpCreate, admin.Args{Name: fmt.Sprintf("pair-%d", i)})
		if err != nil {
			c.t.Fatal(err)
		}
		if _, err := op.Do(ctx, admin.OpAdd, admin.Args{Group: r.Group, Clients: []string{fmt.Sprintf("s%d", i), fmt.Sprintf("r%d", i)}}); err != nil {
			c.t.Fatal(err)
		}
		g, _ := protocol.ParseGroupID(r.Group)
		p := pair{group: g, from: c.dial(ctx, from, i%2, gwKey, ksKey), to: c.dial(ctx, to, (i+1)%2, gwKey, ksKey)}
		for _, cl := range []*clientsdk.Client{p.from, p.to} {
			if err := cl.WaitKey(ctx, g); err != nil {
				c.t.Fatal(err)
			}
		}
		pairs = append(pairs, p)
	}
	return pairs
}

func (c *cluster) newClient(ctx context.Context, op *admin.Client, name string) *keys.ClientIdentity {
	id, _ := keys.GenerateClientIdentity(nil)
	if _, err := op.Do(ctx, admin.OpRegister, admin.Args{Client: keys.EncodeClientPublic(id.Public()), Name: name}); err != nil {
		c.t.Fatal(err)
	}
	return id
}

func (c *cluster) dial(ctx context.Context, id *keys.ClientIdentity, gw int, gwKey, ksKey [32]byte) *clientsdk.Client {
	c.t.Helper()
	var cl *clientsdk.Client
	var err error
	for range 30 { // the gateway may not have the registration yet
		cl, err = clientsdk.Dial(ctx, clientsdk.Config{Addr: c.gateway[gw], Identity: id, ServerKey: gwKey, KeyserverKey: ksKey,
			MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second, Logf: c.clientLog(fmt.Sprintf("%s@gateway-%d", id.ID().Short(), gw+1))})
		if err == nil {
			c.t.Cleanup(func() { cl.Close() })
			return cl
		}
		time.Sleep(500 * time.Millisecond)
	}
	c.t.Fatal(err)
	return nil
}

// clientLog is a client's diagnostics in the test's log, at most 400
// lines for all clients together; the copies a client drops as replays
// (deliveries again after a gateway's rewind) are only counted.
func (c *cluster) clientLog(name string) func(string, ...any) {
	return func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		if strings.Contains(line, "(replay)") {
			c.replays.Add(1)
			return
		}
		if c.clientLines.Add(1) <= 400 {
			c.t.Logf("%s %s: %s", time.Now().Format("15:04:05.000"), name, line)
		}
	}
}

func receive(cl *clientsdk.Client, tl *tally) {
	for m := range cl.Messages() {
		tl.deliver(string(m.Payload))
	}
}

// exchange has every pair's sender send n messages at once; during runs
// once half of all sends are acknowledged.
func exchange(ctx context.Context, t *testing.T, pairs []pair, tl *tally, phase string, n int, during func()) {
	var wg sync.WaitGroup
	var done atomic.Int64
	var once sync.Once
	total := int64(n * len(pairs))
	for i, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range n {
				tl.sent.Add(1)
				sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				err := p.from.Send(sctx, p.group, []byte(fmt.Sprintf("%s/%d/%d", phase, i, j)))
				cancel()
				switch {
				case err == nil:
					tl.acked.Add(1)
				case err == clientsdk.ErrRefused:
					tl.refused.Add(1)
				default:
					tl.failed.Add(1)
					t.Errorf("send %s/%d/%d: %v", phase, i, j, err)
				}
				if done.Add(1) == total/2 && during != nil {
					once.Do(during)
				}
			}
		}()
	}
	wg.Wait()
}

func waitDelivered(t *testing.T, tl *tally) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for tl.delivered.Load() < tl.acked.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("delivered %d of %d acknowledged messages", tl.delivered.Load(), tl.acked.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// adminChanges makes changes while a NATS node is down and returns the
// names of what it created: each change was acknowledged.
func (c *cluster) adminChanges(ctx context.Context, op *admin.Client) []string {
	c.t.Helper()
	var names []string
	for i := range 3 {
		name := fmt.Sprintf("late-%d", i)
		c.newClient(ctx, op, name)
		if _, err := op.Do(ctx, admin.OpCreate, admin.Args{Name: "g-" + name}); err != nil {
			c.t.Fatal(err)
		}
		if _, err := op.Do(ctx, admin.OpAdd, admin.Args{Group: "g-" + name, Clients: []string{name}}); err != nil {
			c.t.Fatal(err)
		}
		names = append(names, name)
	}
	if _, err := op.Do(ctx, admin.OpRekey, admin.Args{Group: "pair-0", Reason: "while nats-2 is down"}); err != nil {
		c.t.Fatal(err)
	}
	return names
}

// projection replays the log with the keyserver's credentials.
func (c *cluster) projection(ctx context.Context) *events.Projection {
	c.t.Helper()
	js, _ := jetstream.New(c.mustConnect("comm-keyserver", "keyserver"))
	store, err := events.OpenReadOnly(ctx, js)
	if err != nil {
		c.t.Fatal(err)
	}
	p, err := events.Load(ctx, store, c.readKey("keyserver.pub", keys.KindKeyserverPublic), nil, func(err error) { c.t.Errorf("refused: %v", err) })
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

// checkEventsPresent: every acknowledged change made while a node was
// down is in the log.
func (c *cluster) checkEventsPresent(ctx context.Context, names []string) {
	c.t.Helper()
	c.projection(ctx).Read(func(s *fold.State) {
		for _, n := range names {
			g, ok := s.GroupByName("g-" + n)
			cl, ok2 := s.ClientByName(n)
			if !ok || !ok2 || !g.IsMember(cl.ID) {
				c.t.Fatalf("change %s acknowledged while nats-2 was down is missing from the log", n)
			}
		}
	})
}

// checkReplicasCurrent waits until every replica of the streams is current.
func (c *cluster) checkReplicasCurrent(ctx context.Context) {
	c.t.Helper()
	js, _ := jetstream.New(c.mustConnect("comm-keyserver", "keyserver"))
	k, err := streams.LoadShards(ctx, js)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, name := range append([]string{streams.Events, streams.Bundles}, k.All()...) {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			s, err := js.Stream(ctx, name)
			if err == nil {
				info, err := s.Info(ctx)
				if err == nil && replicasCurrent(info) {
					break
				}
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("stream %s: replicas not current after the node rejoined", name)
			}
			time.Sleep(time.Second)
		}
	}
}

func replicasCurrent(info *jetstream.StreamInfo) bool {
	if info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		return false
	}
	for _, r := range info.Cluster.Replicas {
		if !r.Current || r.Offline {
			return false
		}
	}
	return true
}

// audit returns the group's audited timeline as JSON, without the time
// the audit ran.
func (c *cluster) audit(ctx context.Context, group string) string {
	c.t.Helper()
	r := c.auditReport(ctx, group)
	r.Until = time.Time{}
	r.Verified.LogEvents = 0 // other groups' events may follow
	var b bytes.Buffer
	json.NewEncoder(&b).Encode(r)
	return b.String()
}

// auditReport is the verified audit of a group's history, as the
// auditor role reads it.
func (c *cluster) auditReport(ctx context.Context, group string) *audit.Report {
	c.t.Helper()
	js, _ := jetstream.New(c.mustConnect("ksctl-audit", "auditor"))
	r, err := audit.Run(ctx, js, c.readKey("keyserver.pub", keys.KindKeyserverPublic), group, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

// checkPermissions runs the permission matrix of docs/SECURITY.md on the
// R3 cluster: every role, every write path (publish, service reply,
// deliver subject, pull-request reply, the JetStream API), every stream.
func (c *cluster) checkPermissions(ctx context.Context) {
	c.t.Helper()
	ks, _ := jetstream.New(c.mustConnect("comm-keyserver", "keyserver"))
	env := matrixEnv{
		connect: func(r natsauth.Role, opts ...nats.Option) (*nats.Conn, error) {
			return c.connect("comm-"+string(r), string(r), opts...)
		},
		observer: ks,
		source: map[natsauth.Role]string{natsauth.Keyserver: streams.Events, natsauth.Relay: streams.Events,
			natsauth.Gateway: streams.AcceptedStream, natsauth.Auditor: streams.Events},
	}
	if !c.t.Run("permission matrix", func(t *testing.T) { runMatrix(t, env) }) {
		c.t.Fatal("the permission matrix failed on the cluster")
	}
	// over TLS with the CA, so that the refusal is about the credentials
	if _, err := nats.Connect(c.urls(), nats.RootCAs(c.caFile()), nats.Timeout(5*time.Second)); !errors.Is(err, nats.ErrAuthorization) {
		c.t.Fatalf("an unauthenticated connection over TLS: %v, want an authorization violation", err)
	} else {
		c.t.Logf("unauthenticated connection refused: %v", err)
	}
}

// checkNoCounterTwice reads every accepted envelope: no (group, sender,
// counter) was stored twice.
func (c *cluster) checkNoCounterTwice(ctx context.Context) {
	c.t.Helper()
	seen := map[string]bool{}
	c.eachAccepted(ctx, func(h envelope.Header) {
		k := fmt.Sprint(h.Group, h.Sender, h.Counter)
		if seen[k] {
			c.t.Fatalf("(group, sender, counter) %s accepted twice", k)
		}
		seen[k] = true
	})
	c.t.Logf("%d accepted messages, every (group, sender, counter) once", len(seen))
}

// eachAccepted calls fn with the header of every envelope in every shard
// of the accepted envelopes, shard after shard, each in order. Right after faults the cluster may still be
// electing the stream's leader or placing the reader's consumer
// ("no responders", a fetch that times out): a failed read is logged and
// the whole read starts again, for up to two minutes.
func (c *cluster) eachAccepted(ctx context.Context, fn func(envelope.Header)) {
	c.t.Helper()
	nc := c.mustConnect("comm-keyserver", "keyserver")
	defer nc.Close()
	js, _ := jetstream.New(nc)
	deadline := time.Now().Add(2 * time.Minute)
	for attempt := 1; ; attempt++ {
		headers, err := readAccepted(ctx, js)
		if err == nil {
			for _, h := range headers {
				fn(h)
			}
			return
		}
		var bad badEnvelopeError
		if errors.As(err, &bad) || time.Now().After(deadline) {
			c.t.Fatalf("reading the accepted shards (attempt %d): %v", attempt, err)
		}
		c.t.Logf("reading the accepted shards (attempt %d): %v; reading again", attempt, err)
		time.Sleep(2 * time.Second)
	}
}

// badEnvelopeError is a stored message that is not an envelope: a
// finding, not a transient failure.
type badEnvelopeError struct{ err error }

func (e badEnvelopeError) Error() string {
	return "stored message is not an envelope: " + e.err.Error()
}

// readAccepted reads the header of every envelope of every shard once.
func readAccepted(ctx context.Context, js jetstream.JetStream) ([]envelope.Header, error) {
	k, err := streams.LoadShards(ctx, js)
	if err != nil {
		return nil, err
	}
	var all []envelope.Header
	for _, name := range k.All() {
		headers, err := readShard(ctx, js, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		all = append(all, headers...)
	}
	return all, nil
}

// readShard reads the header of every envelope of one shard once.
func readShard(ctx context.Context, js jetstream.JetStream, name string) ([]envelope.Header, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream info: %w", err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("ordered consumer: %w", err)
	}
	headers := make([]envelope.Header, 0, info.State.Msgs)
	for uint64(len(headers)) < info.State.Msgs {
		batch, err := cons.Fetch(int(min(info.State.Msgs-uint64(len(headers)), 10000)), jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			return nil, fmt.Errorf("fetch after %d of %d: %w", len(headers), info.State.Msgs, err)
		}
		for m := range batch.Messages() {
			h, err := envelope.ParseHeader(m.Data())
			if err != nil {
				return nil, badEnvelopeError{err}
			}
			headers = append(headers, h)
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("fetch after %d of %d: %w", len(headers), info.State.Msgs, err)
		}
	}
	return headers, nil
}
