package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/streams"
)

// The permission matrix of docs/SECURITY.md: for every role and every way
// a NATS user can write, the streams that write may change. Every other
// cell is refused. The test runs each row against a real server with the
// production authorization, in process (TestPermissionMatrix) and on the
// docker compose cluster (its permission phase).

// The write paths.
const (
	pathPublish   = "publish"        // publish to the stream's subjects (a JetStream publish, with an ack)
	pathReply     = "service reply"  // a request to a service (relay, keyserver) whose reply subject is the stream's
	pathDeliver   = "deliver"        // a push consumer, on a stream the role reads, delivering to the stream's subject
	pathPullReply = "pull reply"     // a pull request, on a consumer of a stream the role reads, replying to the stream's subject
	pathDelete    = "api delete"     // $JS.API.STREAM.DELETE
	pathPurge     = "api purge"      // $JS.API.STREAM.PURGE
	pathMsgDelete = "api msg delete" // $JS.API.STREAM.MSG.DELETE
	pathUpdate    = "api update"     // $JS.API.STREAM.UPDATE
)

var paths = []string{pathPublish, pathReply, pathDeliver, pathPullReply, pathDelete, pathPurge, pathMsgDelete, pathUpdate}

// lastShard is the last accepted shard of a deployment with the default
// K: the matrix covers shard 0 (the stream of the versions before
// sharding) and it, each in its own account.
var lastShard = streams.AcceptedShard(streams.DefaultShards - 1)

// matrixStreams are the columns, every stream of the Communicator.
var matrixStreams = []string{streams.Events, streams.Checkpoints, streams.Bundles, streams.AdminRequests,
	streams.AcceptedStream, lastShard, streams.KVStream(streams.Relays), streams.KVStream(streams.Cursors), streams.KVStream(streams.KeyserverKV)}

// allowed is the matrix's every ✓: role → path → the streams it may change.
var allowed = map[natsauth.Role]map[string][]string{
	natsauth.Keyserver: {
		pathPublish: {streams.Events, streams.Checkpoints, streams.Bundles, streams.AdminRequests, streams.KVStream(streams.KeyserverKV)},
		pathUpdate:  matrixStreams,
	},
	natsauth.Relay: {
		pathPublish: {streams.AcceptedStream, lastShard, streams.KVStream(streams.Relays)},
		pathPurge:   {streams.AcceptedStream, lastShard},
	},
	natsauth.Gateway: {
		pathPublish: {streams.KVStream(streams.Cursors)},
	},
}

// matrixRow is one row: a role and a path, the streams it may change.
type matrixRow struct {
	role  natsauth.Role
	path  string
	allow []string
}

func matrixRows() []matrixRow {
	var rows []matrixRow
	for _, r := range natsauth.Roles {
		for _, p := range paths {
			rows = append(rows, matrixRow{r, p, allowed[r][p]})
		}
	}
	return rows
}

// matrixEnv is where the matrix runs.
type matrixEnv struct {
	connect func(natsauth.Role, ...nats.Option) (*nats.Conn, error)
	// observer reads every stream's state: the keyserver's connection
	// (it may read every stream's info).
	observer jetstream.JetStream
	// source is, per role, a stream it reads that holds messages, for the
	// deliver and pull-reply paths ("" for a role that reads nothing).
	source map[natsauth.Role]string
}

// sample is a subject of each stream, for the writes.
func sample(stream string) string {
	switch stream {
	case streams.Events:
		return streams.EventSubject("group.matrix")
	case streams.Checkpoints:
		return streams.CheckpointSubject
	case streams.Bundles:
		return streams.BundlePrefix + "matrix.matrix"
	case streams.AdminRequests:
		return streams.AdminRequestSubject("matrix")
	case streams.AcceptedStream:
		return streams.AcceptedPrefix + "matrix.matrix"
	case lastShard:
		return streams.AcceptedShardPrefix(streams.DefaultShards-1) + "matrix.matrix"
	}
	return "$KV." + strings.TrimPrefix(stream, "KV_") + ".matrix"
}

// runMatrix runs every row and fails the test on every cell that differs.
func runMatrix(t *testing.T, env matrixEnv) {
	for _, row := range matrixRows() {
		t.Run(string(row.role)+"/"+row.path, func(t *testing.T) {
			m := &matrixRun{t: t, env: env, row: row, violations: map[string]chan struct{}{}}
			nc, err := env.connect(row.role, nats.ErrorHandler(m.violation))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			m.nc = nc
			m.run()
		})
	}
}

type matrixRun struct {
	t   *testing.T
	env matrixEnv
	nc  *nats.Conn
	row matrixRow

	mu         sync.Mutex
	violations map[string]chan struct{} // closed when the server refuses a publish to the subject
}

// violation records the server's refusal of a publish.
func (m *matrixRun) violation(_ *nats.Conn, _ *nats.Subscription, err error) {
	const pre = `Permissions Violation for Publish to "`
	text := err.Error()
	i := strings.Index(text, pre)
	if i < 0 {
		return
	}
	subject, _, _ := strings.Cut(text[i+len(pre):], `"`)
	ch := m.refused(subject)
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

func (m *matrixRun) refused(subject string) chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := m.violations[subject]
	if ch == nil {
		ch = make(chan struct{})
		m.violations[subject] = ch
	}
	return ch
}

func (m *matrixRun) run() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := m.lastSeqs(ctx)
	changed := map[string]bool{}
	for _, st := range matrixStreams {
		ok, err := m.try(ctx, st)
		if ok {
			changed[st] = true
		}
		m.t.Logf("%-24s %-6v %v", st, ok, err)
	}
	m.settle(ctx, before, changed)
	for _, st := range matrixStreams {
		want := slices.Contains(m.row.allow, st)
		if changed[st] != want {
			m.t.Errorf("%s %s → %s: changed %v, want %v", m.row.role, m.row.path, st, changed[st], want)
		}
	}
}

// settle waits a moment for a write that the server does after the
// request (a delivery), and marks every stream whose sample subject got a
// message.
func (m *matrixRun) settle(ctx context.Context, before map[string]uint64, changed map[string]bool) {
	if m.row.path == pathPublish || strings.HasPrefix(m.row.path, "api") {
		return // the answer told
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		for st, seq := range m.lastSeqs(ctx) {
			if seq != before[st] {
				changed[st] = true
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// lastSeqs is, per stream, the number of messages on its sample subject,
// which nothing but the matrix writes to.
func (m *matrixRun) lastSeqs(ctx context.Context) map[string]uint64 {
	out := map[string]uint64{}
	for _, st := range matrixStreams {
		s, err := m.env.observer.Stream(ctx, st)
		if err != nil {
			m.t.Fatalf("observing %s: %v", st, err)
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(sample(st)))
		if err != nil {
			m.t.Fatalf("observing %s: %v", st, err)
		}
		out[st] = info.State.Subjects[sample(st)]
	}
	return out
}

// try attempts the row's path against stream st; ok reports that the
// server accepted it (for the paths whose effect is the server's answer).
func (m *matrixRun) try(ctx context.Context, st string) (bool, error) {
	switch m.row.path {
	case pathPublish:
		// Not on the sample subject, which later rows watch: a value in
		// COMM_RELAYS expires, and its expiry writes a marker there.
		return m.request(ctx, strings.Replace(sample(st), "matrix", "written", 1), []byte("matrix"))
	case pathReply:
		return false, m.serviceReply(sample(st))
	case pathDeliver:
		return false, m.deliver(ctx, sample(st))
	case pathPullReply:
		return false, m.pullReply(ctx, sample(st))
	case pathDelete:
		return m.api(ctx, "STREAM.DELETE."+st, nil)
	case pathPurge:
		// Purge nothing real: the row says whether the server lets it.
		return m.api(ctx, "STREAM.PURGE."+st, map[string]any{"filter": sample(st)})
	case pathMsgDelete:
		return m.api(ctx, "STREAM.MSG.DELETE."+st, map[string]any{"seq": 1})
	case pathUpdate:
		return m.update(ctx, st)
	}
	return false, fmt.Errorf("unknown path %q", m.row.path)
}

// request sends a request and reports a non-error answer; the server's
// refusal of the publish ends the wait.
func (m *matrixRun) request(ctx context.Context, subject string, data []byte) (bool, error) {
	inbox := m.nc.NewRespInbox()
	answers := make(chan *nats.Msg, 1)
	sub, err := m.nc.ChanSubscribe(inbox, answers)
	if err != nil {
		return false, err
	}
	defer sub.Unsubscribe()
	if err := m.nc.PublishRequest(subject, inbox, data); err != nil {
		return false, err
	}
	var msg *nats.Msg
	select {
	case msg = <-answers:
	case <-m.refused(subject):
		return false, errors.New("permissions violation")
	case <-time.After(5 * time.Second):
		return false, errors.New("no answer")
	case <-ctx.Done():
		return false, ctx.Err()
	}
	if msg.Header.Get("Status") == "503" {
		return false, nats.ErrNoResponders
	}
	var resp struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if json.Unmarshal(msg.Data, &resp) == nil && resp.Error != nil {
		return false, errors.New(resp.Error.Description)
	}
	return true, nil
}

func (m *matrixRun) api(ctx context.Context, op string, body any) (bool, error) {
	var data []byte
	if body != nil {
		data, _ = json.Marshal(body)
	}
	return m.request(ctx, "$JS.API."+op, data)
}

// update sends the stream's own configuration back, unchanged.
func (m *matrixRun) update(ctx context.Context, st string) (bool, error) {
	s, err := m.env.observer.Stream(ctx, st)
	if err != nil {
		return false, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return false, err
	}
	return m.api(ctx, "STREAM.UPDATE."+st, info.Config)
}

// serviceReply asks each service with reply subject reply: a gateway's
// request to a relay, an admin's to the keyserver. A role that may call
// neither is refused the publish.
func (m *matrixRun) serviceReply(reply string) error {
	for _, subject := range []string{streams.PartitionSubject(0), streams.AdminSubject("list")} {
		msg := nats.NewMsg(subject)
		msg.Reply, msg.Data = reply, []byte("matrix")
		msg.Header.Set(streams.HeaderSender, strings.Repeat("ab", 32))
		if err := m.nc.PublishMsg(msg); err != nil {
			return err
		}
	}
	return m.nc.Flush()
}

// deliver creates a push consumer on the role's source stream, delivering
// to subject.
func (m *matrixRun) deliver(ctx context.Context, subject string) error {
	src := m.source()
	name := "matrix_" + nuid.Next()
	_, err := m.api(ctx, "CONSUMER.CREATE."+src+"."+name, map[string]any{"stream_name": src,
		"config": map[string]any{"name": name, "deliver_subject": subject, "deliver_policy": "all", "ack_policy": "none",
			"inactive_threshold": int64(10 * time.Second)}})
	return err
}

// pullReply creates a pull consumer on the role's source stream and asks
// it for messages with reply subject subject.
func (m *matrixRun) pullReply(ctx context.Context, subject string) error {
	src := m.source()
	name := "matrix_" + nuid.Next()
	if _, err := m.api(ctx, "CONSUMER.CREATE."+src+"."+name, map[string]any{"stream_name": src,
		"config": map[string]any{"name": name, "deliver_policy": "all", "ack_policy": "none",
			"inactive_threshold": int64(10 * time.Second)}}); err != nil {
		return err
	}
	if err := m.nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+src+"."+name, subject, []byte(`{"batch":4}`)); err != nil {
		return err
	}
	return m.nc.Flush()
}

func (m *matrixRun) source() string {
	if src := m.env.source[m.row.role]; src != "" {
		return src
	}
	return streams.Events // a role that reads nothing tries the log
}
