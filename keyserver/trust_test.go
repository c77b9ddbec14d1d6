package keyserver_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/keyserver/admin"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

// serve answers the admin API of k until the test ends.
func (e *env) serve(k *keyserver.Keyserver) micro.Service {
	e.t.Helper()
	svc, err := k.Serve(e.nc)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { svc.Stop() })
	if err := e.nc.Flush(); err != nil {
		e.t.Fatal(err)
	}
	return svc
}

// TestAdminReplyCannotWriteStreams: the admin role, with no operator key,
// sends requests whose reply subjects are a member's bundle subject and
// the event log's subject of a group. The keyserver must never answer
// there: before, each unsigned request left an empty 403 message in the
// bundle stream (evicting the member's real bundle, 8 kept per subject)
// and in the event log.
func TestAdminReplyCannotWriteStreams(t *testing.T) {
	e := newEnv(t, false)
	k := e.start()
	e.serve(k)
	alice := e.client(k, "alice")
	g, _ := k.CreateGroup(e.ctx, keyserver.Actor{}, "ops", record.Policy{})
	if _, err := k.AddMembers(e.ctx, keyserver.Actor{}, "ops", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	events0 := e.streamMsgs(streams.Events)
	bundles0 := e.streamMsgs(streams.Bundles)
	for _, reply := range []string{streams.BundleSubject(g, alice.ID()), streams.EventSubject(record.GroupAggregate(g))} {
		for range 8 {
			if err := e.admin.PublishRequest(admin.Subject(admin.OpList), reply, []byte("not signed")); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A signed request with a proper inbox is still answered: the ones
	// before it were handled (in order) by then.
	if _, err := (&admin.Client{NC: e.admin, Operator: e.operator}).Do(e.ctx, admin.OpList, admin.Args{}); err != nil {
		t.Fatal(err)
	}
	if n := e.streamMsgs(streams.Events); n != events0 {
		t.Errorf("the event log went from %d to %d records", events0, n)
	}
	if n := e.streamMsgs(streams.Bundles); n != bundles0 {
		t.Errorf("the bundle stream went from %d to %d messages", bundles0, n)
	}
	if b, _, err := e.bundleOf(g, alice); err != nil || b.Epoch != 1 {
		t.Errorf("alice's bundle of ops: %v, %v", b, err)
	}
}

func (e *env) streamMsgs(name string) uint64 {
	e.t.Helper()
	s, err := e.js.Stream(e.ctx, name)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

// TestFailedAdminRequestNotReplayable: a signed "add bob to ops" that
// fails because bob is not registered yet writes no event; after a
// keyserver restart and bob's registration, the very same bytes must
// not run again (before, nonces were re-learned from events only, and the
// replay added bob): they get the first outcome, the refusal, again.
func TestFailedAdminRequestNotReplayable(t *testing.T) {
	e := newEnv(t, false)
	k := e.start()
	svc := e.serve(k)
	if _, err := k.CreateGroup(e.ctx, keyserver.Actor{}, "ops", record.Policy{}); err != nil {
		t.Fatal(err)
	}
	wire, err := admin.Sign(admin.OpAdd, admin.Args{Group: "ops", Clients: []string{"bob"}}, e.operator, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if code := e.rawAdmin(admin.OpAdd, wire); code != "400" {
		t.Fatalf("adding an unregistered bob: code %q, want 400", code)
	}
	svc.Stop()
	k.Close()
	k = e.start()
	e.serve(k)
	e.client(k, "bob")
	if msg := e.ask(admin.OpAdd, wire); msg.Header.Get(micro.ErrorCodeHeader) != "400" || msg.Header.Get(admin.HeaderStatus) != admin.StatusRecorded {
		t.Fatalf("the replayed request after a restart: %v, want its first outcome (400) from the record", msg.Header)
	}
	k.Projection().Read(func(s *fold.State) {
		if g, _ := s.GroupByName("ops"); len(g.Members) != 0 {
			t.Errorf("the replay changed ops: members %v", g.MemberList())
		}
	})
}

// rawAdmin sends wire as the admin role and returns the error code of the
// answer ("" for success).
func (e *env) rawAdmin(op string, wire []byte) string {
	e.t.Helper()
	return e.ask(op, wire).Header.Get(micro.ErrorCodeHeader)
}

// ask sends wire as the admin role and returns the answer.
func (e *env) ask(op string, wire []byte) *nats.Msg {
	e.t.Helper()
	msg, err := e.admin.Request(admin.Subject(op), wire, 10*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Logf("%s: %q %s %s", op, msg.Header.Get(micro.ErrorCodeHeader), msg.Header.Get(micro.ErrorHeader), msg.Header.Get(admin.HeaderStatus))
	return msg
}

// TestInterruptedRevokeCompletes: a revocation interrupted between its
// "revoked" event and the client's removal from its groups is finished by
// running it again (by name or id), through the admin API too, and by a
// restart. Before, a retry failed with "unknown client" (a revocation
// frees the name) and the client stayed a member.
func TestInterruptedRevokeCompletes(t *testing.T) {
	e := newEnv(t, false)
	k := e.start()
	for _, n := range []string{"alice", "bob", "carol", "dave"} {
		e.client(k, n)
	}
	for _, g := range []string{"ops", "dev"} {
		if _, err := k.CreateGroup(e.ctx, keyserver.Actor{}, g, record.Policy{}); err != nil {
			t.Fatal(err)
		}
		if _, err := k.AddMembers(e.ctx, keyserver.Actor{}, g, []string{"alice", "bob", "carol", "dave"}); err != nil {
			t.Fatal(err)
		}
	}
	interrupt := func(name string) protocol.ClientID {
		var id protocol.ClientID
		k.Projection().Read(func(s *fold.State) { c, _ := s.ClientByName(name); id = c.ID })
		e.appendBehind(k, record.NewClientRevoked(id, "stolen"))
		return id
	}
	bob, carol, dave := interrupt("bob"), interrupt("carol"), interrupt("dave")

	if err := k.RevokeClient(e.ctx, keyserver.Actor{}, "bob", "stolen"); err != nil {
		t.Fatalf("revoking bob again by name: %v", err)
	}
	if err := k.RevokeClient(e.ctx, keyserver.Actor{}, carol.String(), "stolen"); err != nil {
		t.Fatalf("revoking carol again by id: %v", err)
	}
	if err := k.RevokeClient(e.ctx, keyserver.Actor{}, "bob", "stolen"); err != nil {
		t.Fatalf("revoking bob a third time: %v", err)
	}
	e.notMember(k, bob, carol)
	e.isMember(k, dave)

	k.Close()
	k = e.start() // recovery finishes dave's
	e.notMember(k, bob, carol, dave)
	e.serve(k)
	op := &admin.Client{NC: e.admin, Operator: e.operator}
	if _, err := op.Do(e.ctx, admin.OpRevoke, admin.Args{Name: "dave"}); err != nil {
		t.Fatalf("revoking dave again through the admin API: %v", err)
	}
	var ae *admin.Error
	if _, err := op.Do(e.ctx, admin.OpRevoke, admin.Args{Name: "nobody"}); !errors.As(err, &ae) || ae.Code != "400" {
		t.Fatalf("revoking a client that never existed: %v, want a 400 refusal", err)
	}
}

// appendBehind appends an event to the log as the keyserver would,
// without running its command: what a crash leaves. k follows the log.
func (e *env) appendBehind(k *keyserver.Keyserver, ev *record.Event) {
	e.t.Helper()
	store, err := events.OpenStore(e.ctx, e.js, events.StoreConfig{})
	if err != nil {
		e.t.Fatal(err)
	}
	p, err := events.Load(e.ctx, store, e.ksKey.Public(), nil, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	seq, err := events.NewWriter(store, p, e.ksKey, nil).Append(e.ctx, ev)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := k.Projection().WaitFor(e.ctx, seq); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) notMember(k *keyserver.Keyserver, ids ...protocol.ClientID) {
	e.t.Helper()
	e.membership(k, false, ids)
}

func (e *env) isMember(k *keyserver.Keyserver, ids ...protocol.ClientID) {
	e.t.Helper()
	e.membership(k, true, ids)
}

func (e *env) membership(k *keyserver.Keyserver, want bool, ids []protocol.ClientID) {
	e.t.Helper()
	k.Projection().Read(func(s *fold.State) {
		for _, name := range []string{"ops", "dev"} {
			g, _ := s.GroupByName(name)
			for _, id := range ids {
				if g.IsMember(id) != want {
					e.t.Errorf("%s: member %v, want %v", name, !want, want)
				}
			}
		}
	})
}

// TestAdminForeignReplyDropped: in a deployment in one account (no
// natsauth accounts), an admin request whose reply subject is neither a
// cross-account response nor an admin inbox is dropped unanswered,
// counted and logged.
func TestAdminForeignReplyDropped(t *testing.T) {
	_, nc := natstest.Open(t)
	ks, _ := keys.GenerateSigningKey(nil)
	k, err := keyserver.Start(t.Context(), nc, keyserver.Config{Key: ks})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	svc, err := k.Serve(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	nc.PublishRequest(admin.Subject(admin.OpList), streams.BundlePrefix+"x.y", []byte("not signed"))
	inbox := natsauth.InboxPrefix(natsauth.Admin) + ".test"
	answers, _ := nc.SubscribeSync(inbox)
	nc.PublishRequest(admin.Subject(admin.OpList), inbox, []byte("not signed"))
	if msg, err := answers.NextMsg(5 * time.Second); err != nil || msg.Header.Get(micro.ErrorCodeHeader) != "403" {
		t.Fatalf("a request to an admin inbox: %v %v", msg, err)
	}
	if n := k.Metrics.Snapshot()["comm_keyserver_admin_foreign_replies_total"]; n != 1 {
		t.Fatalf("%d foreign replies counted, want 1", n)
	}
	js, _ := jetstream.New(nc)
	st, _ := js.Stream(t.Context(), streams.Bundles)
	if info, _ := st.Info(t.Context()); info.State.Msgs != 0 {
		t.Fatalf("%d messages in the bundle stream", info.State.Msgs)
	}
}
