package keyserver_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/msgpacksafe"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/keyserver/admin"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
)

// TestAdminRetryReturnsFirstOutcome: a signed request is idempotent by
// its nonce. The very same bytes sent again get the first outcome (a
// reply or a refusal), marked as such, and change nothing more, even past
// the clock window; another request with the same nonce is refused as a
// replay; and a request a keyserver crash interrupted after its event was
// appended is reported, after the restart, as committed. Before, every
// second sending was refused as a replay, whatever had happened.
func TestAdminRetryReturnsFirstOutcome(t *testing.T) {
	e := newEnv(t, false)
	k := e.start()
	svc := e.serve(k)
	alice := e.client(k, "alice")
	g, err := k.CreateGroup(e.ctx, keyserver.Actor{}, "ops", record.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.AddMembers(e.ctx, keyserver.Actor{}, "ops", []string{"alice"}); err != nil {
		t.Fatal(err)
	}

	rekey := e.signed(admin.OpRekey, admin.Args{Group: "ops", Reason: "drill"}, 1)
	for i, want := range []string{"", admin.StatusRecorded} {
		r := e.reply(e.ask(admin.OpRekey, rekey))
		if r.Epoch != 2 || r.Status != want || r.Message != "epoch 2 opened" {
			t.Fatalf("rekey, sending %d: %+v, want epoch 2 opened, status %q", i+1, r, want)
		}
	}
	e.epochIs(k, g, 2)

	add := e.signed(admin.OpAdd, admin.Args{Group: "ops", Clients: []string{"nobody"}}, 2)
	first, again := e.ask(admin.OpAdd, add), e.ask(admin.OpAdd, add)
	if code := first.Header.Get(micro.ErrorCodeHeader); code != "400" || first.Header.Get(admin.HeaderStatus) != "" {
		t.Fatalf("an invalid add: %v", first.Header)
	}
	if again.Header.Get(micro.ErrorCodeHeader) != "400" || again.Header.Get(micro.ErrorHeader) != first.Header.Get(micro.ErrorHeader) ||
		again.Header.Get(admin.HeaderStatus) != admin.StatusRecorded {
		t.Fatalf("the invalid add again: %v, want the first refusal, recorded", again.Header)
	}

	other := e.signed(admin.OpRekey, admin.Args{Group: "ops", Reason: "another"}, 1) // the drill's nonce
	if msg := e.ask(admin.OpRekey, other); msg.Header.Get(micro.ErrorCodeHeader) != "403" ||
		!strings.Contains(msg.Header.Get(micro.ErrorHeader), "replayed") {
		t.Fatalf("another request with a taken nonce: %v, want refused as a replay", msg.Header)
	}
	e.epochIs(k, g, 2)

	e.clock.advance(10 * time.Minute) // past the clock window of every request signed so far
	if r := e.reply(e.ask(admin.OpRekey, rekey)); r.Epoch != 2 || r.Status != admin.StatusRecorded {
		t.Fatalf("the rekey again, past the clock window: %+v", r)
	}
	if code := e.rawAdmin(admin.OpRekey, e.signed(admin.OpRekey, admin.Args{Group: "ops"}, 3)); code != "403" {
		t.Fatalf("a new request past the clock window: code %q, want 403", code)
	}
	e.clock.advance(-10 * time.Minute)
	e.epochIs(k, g, 2)

	// A keyserver stops while it runs two rekeys: one after its event was
	// appended, one before.
	committed := e.signed(admin.OpRekey, admin.Args{Group: "ops", Reason: "crash"}, 4)
	lost := e.signed(admin.OpRekey, admin.Args{Group: "ops", Reason: "lost"}, 5)
	for _, wire := range [][]byte{committed, lost} {
		if err := keyserver.RecordTaken(e.ctx, e.js, wire); err != nil {
			t.Fatal(err)
		}
	}
	ev := record.NewEpoch(record.GroupRekeyed, g, 3, nil, bundle.MemberDigest([]protocol.ClientID{alice.ID()}), "crash")
	op := e.operator.Public()
	ev.Actor, ev.Request = op, [16]byte(nonce(4))
	e.appendBehind(k, ev)
	svc.Stop()
	k.Close()
	k = e.start() // no escrow of epoch 3: recovery opens epoch 4
	e.serve(k)
	r := e.reply(e.ask(admin.OpRekey, committed))
	if r.Status != admin.StatusInterrupted || r.Epoch != 3 ||
		r.Message != "interrupted: the change was committed, epoch 3 of group ops (the group is at epoch 4 now)" {
		t.Fatalf("the rekey interrupted after its event: %+v", r)
	}
	msg := e.ask(admin.OpRekey, lost)
	if msg.Header.Get(micro.ErrorCodeHeader) != "500" || !strings.Contains(msg.Header.Get(micro.ErrorHeader), "no change by it") {
		t.Fatalf("the rekey interrupted before its event: %v", msg.Header)
	}
	e.epochIs(k, g, 4)
}

// nonce is a fixed request nonce.
func nonce(n byte) []byte { return bytes.Repeat([]byte{n}, 16) }

// signed signs a request of the operator's with nonce(n), now (by the
// operator's clock, not the keyserver's settable one).
func (e *env) signed(op string, args admin.Args, n byte) []byte {
	e.t.Helper()
	wire, err := admin.SignRequest(&admin.Request{Op: op, Nonce: nonce(n), Time: time.Now().UnixNano(), Args: args}, e.operator)
	if err != nil {
		e.t.Fatal(err)
	}
	return wire
}

// reply decodes a successful answer.
func (e *env) reply(msg *nats.Msg) *admin.Reply {
	e.t.Helper()
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		e.t.Fatalf("refused: %s %s", code, msg.Header.Get(micro.ErrorHeader))
	}
	var r admin.Reply
	if err := msgpacksafe.Unmarshal(msg.Data, &r); err != nil {
		e.t.Fatal(err)
	}
	return &r
}
