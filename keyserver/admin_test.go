package keyserver_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/keyserver/admin"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
)

func TestAdminAPI(t *testing.T) {
	e := newEnv(t, false)
	k := e.start()
	e.serve(k)
	op := &admin.Client{NC: e.admin, Operator: e.operator}
	alice, _ := keys.GenerateClientIdentity(nil)
	steps := []struct {
		op   string
		args admin.Args
	}{
		{admin.OpRegister, admin.Args{Client: keys.EncodeClientPublic(alice.Public()), Name: "alice"}},
		{admin.OpCreate, admin.Args{Name: "ops", MaxMessages: 100}},
		{admin.OpAdd, admin.Args{Group: "ops", Clients: []string{"alice"}}},
		{admin.OpRekey, admin.Args{Group: "ops", Reason: "drill"}},
	}
	for _, s := range steps {
		if _, err := op.Do(e.ctx, s.op, s.args); err != nil {
			t.Fatalf("%s: %v", s.op, err)
		}
	}
	r, err := op.Do(e.ctx, admin.OpList, admin.Args{})
	if err != nil || len(r.Groups) != 1 || r.Groups[0].Epoch != 2 || r.Groups[0].Members[0] != "alice" {
		t.Fatalf("list: %+v %v", r, err)
	}
	_, err = op.Do(e.ctx, admin.OpAdd, admin.Args{Group: "ops", Clients: []string{"alice"}})
	var ae *admin.Error
	if !errors.As(err, &ae) || ae.Code != "400" {
		t.Fatalf("invalid command: got %v, want a 400 refusal", err)
	}
	t.Logf("invalid command refused: %v", err)
	// A client id of small order (the identity point) is the operator's
	// mistake, refused as such, not a server failure.
	bad := alice.Public()
	bad.ID = protocol.ClientID{1}
	_, err = op.Do(e.ctx, admin.OpRegister, admin.Args{Client: keys.EncodeClientPublic(bad), Name: "nobody"})
	if !errors.As(err, &ae) || ae.Code != "400" || !strings.Contains(err.Error(), "not a valid Ed25519 public key") {
		t.Fatalf("identity point as client id: got %v, want a 400 that names the key", err)
	}
}

// TestUnauthorizedAdminChangesNothing: requests from an unlisted operator,
// with a bad signature, reusing a taken nonce, stale, or sent to another
// operation's subject are refused with a reason, and the state does not
// change.
func TestUnauthorizedAdminChangesNothing(t *testing.T) {
	e := newEnv(t, false)
	k := e.start()
	e.serve(k)
	var before [32]byte
	k.Projection().Read(func(s *fold.State) { before = s.Digest() })
	stranger, _ := keys.GenerateSigningKey(nil)
	create := admin.Args{Name: "evil"}
	goodReq := admin.Request{Op: admin.OpCreate, Nonce: bytes.Repeat([]byte{7}, 16), Time: time.Now().UnixNano(), Args: create}
	good, _ := admin.SignRequest(&goodReq, e.operator)
	if _, err := e.admin.Request(admin.Subject(admin.OpCreate), good, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	k.Projection().Read(func(s *fold.State) { before = s.Digest() })
	strangers, _ := admin.Sign(admin.OpCreate, admin.Args{Name: "x1"}, stranger, time.Now())
	stale, _ := admin.Sign(admin.OpCreate, admin.Args{Name: "x2"}, e.operator, time.Now().Add(-time.Hour))
	wrongSubject, _ := admin.Sign(admin.OpDelete, admin.Args{Group: "evil"}, e.operator, time.Now())
	flipped, _ := admin.Sign(admin.OpCreate, admin.Args{Name: "x3"}, e.operator, time.Now())
	flipped[len(flipped)-1] ^= 1
	reusedReq := admin.Request{Op: admin.OpCreate, Nonce: goodReq.Nonce, Time: time.Now().UnixNano(), Args: admin.Args{Name: "x4"}}
	reused, _ := admin.SignRequest(&reusedReq, e.operator)
	cases := []struct {
		name    string
		subject string
		data    []byte
	}{
		{"unlisted operator", admin.OpCreate, strangers},
		{"another request with a taken nonce", admin.OpCreate, reused},
		{"stale request", admin.OpCreate, stale},
		{"another operation's subject", admin.OpCreate, wrongSubject},
		{"bad signature", admin.OpCreate, flipped},
		{"garbage", admin.OpCreate, []byte("hello")},
	}
	for _, c := range cases {
		msg, err := e.admin.Request(admin.Subject(c.subject), c.data, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if code := msg.Header.Get("Nats-Service-Error-Code"); code != "403" {
			t.Errorf("%s: answered code %q, want 403", c.name, code)
		}
		t.Logf("%s: %s", c.name, msg.Header.Get("Nats-Service-Error"))
	}
	k.Projection().Read(func(s *fold.State) {
		if s.Digest() != before {
			t.Fatal("an unauthorized request changed the state")
		}
	})
}
