package integration

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/commsec/communicator/clientsdk"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/stacktest"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/relay"
	"github.com/commsec/communicator/streams"
)

// The attacks on the trust boundaries of NATS that worked against
// 72ccb30, each run against the production authorization (every part
// connects as its role; package natsauth).

// victim is a stack with a relay and a gateway, and alice sending to bob
// in ops.
type victim struct {
	t          *testing.T
	s          *stacktest.Stack
	g          protocol.GroupID
	alice, bob *stacktest.Client
	ca, cb     *clientsdk.Client
}

func newVictim(t *testing.T) *victim {
	s := stacktest.New(t)
	s.AddRelay(relay.Config{})
	s.AddGateway(gateway.Config{})
	v := &victim{t: t, s: s, alice: s.Register("alice"), bob: s.Register("bob")}
	v.g = s.Group("ops", v.alice, v.bob)
	v.ca, v.cb = s.Dial(v.alice, 0), s.Dial(v.bob, 0)
	waitKeys(t, v.g, v.ca, v.cb)
	return v
}

// send has alice send n messages, all delivered to bob.
func (v *victim) send(n int) {
	v.t.Helper()
	ctx := ctxFor(v.t, 30*time.Second)
	for i := range n {
		if err := v.ca.Send(ctx, v.g, []byte(strconv.Itoa(i))); err != nil {
			v.t.Fatal(err)
		}
	}
	expect(v.t, v.cb, n)
}

// store has alice send n messages, each accepted by the relay (stored on
// ops' shard), without waiting for their delivery.
func (v *victim) store(n int) {
	v.t.Helper()
	ctx := ctxFor(v.t, 30*time.Second)
	for i := range n {
		if err := v.ca.Send(ctx, v.g, []byte(strconv.Itoa(i))); err != nil {
			v.t.Fatal(err)
		}
	}
}

// lease is the value and revision of a partition's lease, as a relay reads it.
func (v *victim) lease(p int) (string, uint64) {
	v.t.Helper()
	js, _ := jetstream.New(v.s.Conn(natsauth.Relay))
	kv, err := js.KeyValue(context.Background(), streams.Relays)
	if err != nil {
		v.t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), "part."+strconv.Itoa(p))
	if err != nil {
		v.t.Fatal(err)
	}
	return string(e.Value()), e.Revision()
}

// restartRelay replaces the relay with a new one: a relay that restarts
// has only the stored records to go by.
func (v *victim) restartRelay() {
	v.t.Helper()
	v.s.Relays[0].Close()
	v.s.Relays = v.s.Relays[:0]
	v.s.AddRelay(relay.Config{})
	natstestWait(v.t, func() bool { return len(v.s.Relays[0].Owned()) == streams.Partitions })
}

func natstestWait(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
	}
}

// shard is the stream holding ops' envelopes, and subject c's records in ops.
func (v *victim) shard() string { return v.s.Keyserver.Shards().Stream(v.g) }

func (v *victim) subject(c *stacktest.Client) string {
	return v.s.Keyserver.Shards().Subject(v.g, c.ID.ID())
}

// lastOf is the counter of the last stored envelope of alice in ops.
func (v *victim) lastOf(c *stacktest.Client) uint64 {
	v.t.Helper()
	st, err := v.s.JS.Stream(context.Background(), v.shard())
	if err != nil {
		v.t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(context.Background(), v.subject(c))
	if err != nil {
		v.t.Fatal(err)
	}
	h, err := envelope.ParseHeader(m.Data)
	if err != nil {
		v.t.Fatalf("alice's last record is not an envelope: %v", err)
	}
	return h.Counter
}

// TestReplyCannotPurgeAccepted: the gateway's NATS user sends the relay
// requests whose reply subjects are the accepted stream's purge API,
// another partition's lease and alice's counter record. Before, the relay
// answered with its own rights: every stored message and counter record
// was erased (and alice's old counters were accepted again after a relay
// restart), the lease overwritten, an empty record stored as alice's.
func TestReplyCannotPurgeAccepted(t *testing.T) {
	v := newVictim(t)
	v.send(2)
	envs := storedEnvelopes(t, v.s)
	owner, rev := v.lease(9)
	gw := v.s.Conn(natsauth.Gateway)
	replies := []string{"$JS.API.STREAM.PURGE." + v.shard(), streams.KVPrefix(streams.Relays) + "part.9",
		v.subject(v.alice)}
	for _, reply := range replies {
		m := nats.NewMsg(streams.InboundSubject(v.g))
		m.Reply, m.Data = reply, envs[1]
		m.Header.Set(streams.HeaderSender, v.alice.ID.ID().String())
		if err := gw.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	// A last request, with a proper inbox, on alice's worker: when it is
	// answered, the ones before it were decided.
	m := nats.NewMsg(streams.InboundSubject(v.g))
	m.Data = envs[1]
	m.Header.Set(streams.HeaderSender, v.alice.ID.ID().String())
	if reply, err := gw.RequestMsg(m, 10*time.Second); err != nil || reply.Header.Get(streams.HeaderStatus) != string(streams.VerdictDuplicate) {
		t.Fatalf("the last envelope again: %v %v", reply, err)
	}
	if n := len(storedEnvelopes(t, v.s)); n != 2 {
		t.Fatalf("%d envelopes stored after the attack, want 2", n)
	}
	if o, r := v.lease(9); o != owner || r != rev {
		t.Errorf("lease of partition 9: %q rev %d, was %q rev %d", o, r, owner, rev)
	}
	if c := v.lastOf(v.alice); c != envelopeCounter(t, envs[1]) {
		t.Errorf("alice's counter record says %d", c)
	}
	v.send(1)
	v.restartRelay()
	conn := rawConn(t, v.s, v.alice, 0)
	if st := sendRaw(t, conn, envs[0]); st != channel.StatusDuplicate {
		t.Fatalf("alice's first envelope again after a relay restart: %v, want duplicate (accepted: her record was purged)", st)
	}
}

func envelopeCounter(t *testing.T, env []byte) uint64 {
	t.Helper()
	h, err := envelope.ParseHeader(env)
	if err != nil {
		t.Fatal(err)
	}
	return h.Counter
}

// createConsumer creates a consumer through the raw JetStream API and
// returns its name; deliver "" makes a pull consumer.
func createConsumer(t *testing.T, nc *nats.Conn, stream, deliver string, startSeq uint64, filter string) (string, error) {
	t.Helper()
	name := "evil_" + nuid.Next()
	cfg := map[string]any{"name": name, "ack_policy": "none", "deliver_policy": "all", "inactive_threshold": int64(30 * time.Second)}
	if deliver != "" {
		cfg["deliver_subject"] = deliver
	}
	if startSeq > 0 {
		cfg["deliver_policy"], cfg["opt_start_seq"] = "by_start_sequence", startSeq
	}
	if filter != "" {
		cfg["filter_subject"] = filter
	}
	body, _ := json.Marshal(map[string]any{"stream_name": stream, "config": cfg})
	msg, err := nc.Request("$JS.API.CONSUMER.CREATE."+stream+"."+name, body, 5*time.Second)
	if err != nil {
		return "", err
	}
	var resp struct {
		Error *struct{ Description string } `json:"error"`
	}
	json.Unmarshal(msg.Data, &resp)
	if resp.Error != nil {
		return "", errorString(resp.Error.Description)
	}
	return name, nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

// TestDeliverSubjectCannotAppend: the gateway and the auditor, which may
// read, create push consumers whose deliver subjects are other streams'
// subjects: a lease, a bundle, the event log, a counter record. Before,
// the server re-published stored messages there (the gateway and the
// auditor wrote a record into COMM_RELAYS).
func TestDeliverSubjectCannotAppend(t *testing.T) {
	v := newVictim(t)
	v.send(1)
	targets := []string{streams.KVPrefix(streams.Relays) + "part.9", streams.BundleSubject(v.g, v.alice.ID.ID()),
		streams.EventSubject(record.GroupAggregate(v.g)), v.subject(v.alice),
		streams.KVPrefix(streams.Cursors) + "nobody"}
	before := v.counts(targets)
	type attempt struct {
		nc     *nats.Conn
		stream string
		name   string
	}
	var made []attempt
	for _, who := range []struct {
		role    natsauth.Role
		streams []string
	}{
		{natsauth.Gateway, []string{v.shard(), streams.Events, streams.Bundles}},
		{natsauth.Auditor, []string{streams.Events, streams.Checkpoints}},
	} {
		nc := v.s.Conn(who.role)
		for _, src := range who.streams {
			for _, target := range targets {
				name, err := createConsumer(t, nc, src, target, 0, "")
				t.Logf("%s: consumer on %s delivering to %s: %v", who.role, src, target, err)
				if err == nil {
					made = append(made, attempt{nc, src, name})
				}
			}
		}
	}
	v.checkUnchanged(before)
	for _, a := range made {
		msg, err := a.nc.Request("$JS.API.CONSUMER.INFO."+a.stream+"."+a.name, nil, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var info jetstream.ConsumerInfo
		json.Unmarshal(msg.Data, &info)
		if info.Delivered.Stream != 0 {
			t.Errorf("consumer %s on %s delivered up to %d", a.name, a.stream, info.Delivered.Stream)
		}
	}
	if len(made) == 0 {
		t.Fatal("no consumer could be made at all: the attack did not run")
	}
}

// streamOf is the stream that captures subject.
func streamOf(subject string) string {
	for _, st := range natsauth.Stores() {
		for _, f := range st.Subjects {
			if server.SubjectMatchesFilter(subject, f) {
				return st.Stream
			}
		}
	}
	return ""
}

// counts is the number of messages stored on each subject.
func (v *victim) counts(subjects []string) map[string]uint64 {
	v.t.Helper()
	out := map[string]uint64{}
	for _, subject := range subjects {
		st, err := v.s.JS.Stream(context.Background(), streamOf(subject))
		if err != nil {
			v.t.Fatal(err)
		}
		info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(subject))
		if err != nil {
			v.t.Fatal(err)
		}
		out[subject] = info.State.Subjects[subject]
	}
	return out
}

// checkUnchanged fails if a message is stored on one of the subjects
// within a short while: the deliveries of a consumer happen at once when
// they happen.
func (v *victim) checkUnchanged(before map[string]uint64) {
	v.t.Helper()
	subjects := slices.Collect(maps.Keys(before))
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		for subject, n := range v.counts(subjects) {
			if n != before[subject] {
				v.t.Fatalf("%s went from %d to %d messages", subject, before[subject], n)
			}
		}
	}
}

// TestPullReplyCannotRollBackCounter: the gateway's user pulls alice's
// fifth envelope with the reply subject of alice's counter record (to roll
// it back from her last counter to 5, so that the relay takes counter 6
// again), of a lease, of alice's bundle of ops and of ops' event log; and
// pulls a stored bundle with the reply subjects of ops' event log and of
// alice's bundle. Before, the server re-appended stored messages there:
// a bundle became a record of the event log (nats-server 2.15.2 itself
// refuses a delivery to a $KV subject, and a copy whose compare-and-swap
// header no longer holds; the accounts refuse them all).
func TestPullReplyCannotRollBackCounter(t *testing.T) {
	v := newVictim(t)
	v.send(10)
	envs := storedEnvelopes(t, v.s)
	last := v.lastOf(v.alice)
	gw := v.s.Conn(natsauth.Gateway)
	st, _ := v.s.JS.Stream(context.Background(), v.shard())
	info, _ := st.Info(context.Background())
	fifth := info.State.FirstSeq + 4
	name, err := createConsumer(t, gw, v.shard(), "", fifth, v.subject(v.alice))
	if err != nil {
		t.Fatalf("the gateway may read the accepted stream: %v", err)
	}
	replies := []string{v.subject(v.alice), streams.KVPrefix(streams.Relays) + "part.9",
		streams.EventSubject(record.GroupAggregate(v.g)), streams.BundleSubject(v.g, v.alice.ID.ID())}
	before := v.counts(replies)
	for _, reply := range replies {
		if err := gw.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+v.shard()+"."+name, reply, []byte(`{"batch":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	for _, reply := range replies[2:] {
		bundles, err := createConsumer(t, gw, streams.Bundles, "", 0, "")
		if err != nil {
			t.Fatalf("the gateway may read the bundles: %v", err)
		}
		if err := gw.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+streams.Bundles+"."+bundles, reply, []byte(`{"batch":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	gw.Flush()
	v.checkUnchanged(before)
	if c := v.lastOf(v.alice); c != last {
		t.Fatalf("alice's counter record rolled back from %d to %d", last, c)
	}
	v.restartRelay()
	conn := rawConn(t, v.s, v.alice, 0)
	if st := sendRaw(t, conn, envs[5]); st != channel.StatusDuplicate {
		t.Fatalf("alice's sixth envelope again: %v, want duplicate (accepted: her record was rolled back)", st)
	}
}

// TestPermissionMatrix runs docs/SECURITY.md's matrix, row by row,
// against the production authorization: every role, every way to write,
// every stream.
func TestPermissionMatrix(t *testing.T) {
	v := newVictim(t)
	v.store(1) // a message for the readers' paths, on ops' shard
	env := matrixEnv{
		connect:  v.s.NATS.Dial,
		observer: v.s.JS,
		source: map[natsauth.Role]string{natsauth.Keyserver: streams.Events, natsauth.Relay: streams.Events,
			natsauth.Gateway: v.shard(), natsauth.Auditor: streams.Events},
	}
	runMatrix(t, env)
	t.Run("no credentials", func(t *testing.T) {
		if nc, err := nats.Connect(v.s.NATS.ClientURL(), nats.Timeout(5*time.Second)); err == nil {
			nc.Close()
			t.Fatal("a connection without credentials was accepted")
		}
	})
}
