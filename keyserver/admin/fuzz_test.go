package admin_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/commsec/communicator/keyserver/admin"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
)

// Fixed parties: the one operator the verifier lists, and another key.
var (
	fuzzOperator = fixedKey(0x6f)
	fuzzStranger = fixedKey(0x73)
	fuzzSigned   = time.Unix(1_700_000_000, 0) // when the seed requests were signed
)

func fixedKey(b byte) *keys.SigningKey {
	seed := [32]byte{b, b}
	return keys.NewSigningKey(&seed)
}

// seedRequests are signed requests that Verify must refuse at the fuzz
// target's clock: the operator's own ones are an hour old (outside the
// window), the others are signed by an unlisted key.
func seedRequests(tb testing.TB) [][]byte {
	args := admin.Args{Name: "ops", Group: "ops", Clients: []string{"alice", "bob"}, Reason: "fuzz", MaxMessages: 10, MaxAge: time.Hour}
	var out [][]byte
	for _, c := range []struct {
		op  string
		key *keys.SigningKey
	}{{admin.OpAdd, fuzzOperator}, {admin.OpList, fuzzOperator}, {admin.OpRekey, fuzzStranger}} {
		wire, err := admin.Sign(c.op, args, c.key, fuzzSigned)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, wire)
	}
	return out
}

// FuzzAdminVerify: Verify of arbitrary bytes on any operation's subject
// never panics and never accepts, and every refusal is ErrUnauthorized.
// The fuzzer cannot sign as the listed operator, and the only requests it
// starts from that the operator signed are an hour older than the window
// allows.
func FuzzAdminVerify(f *testing.F) {
	for _, wire := range seedRequests(f) {
		n := len(wire) - protocol.SignatureSize
		flipped := bytes.Clone(wire)
		flipped[n/2] ^= 1
		for _, v := range [][]byte{wire, wire[:n], wire[:n+1], flipped, append(bytes.Clone(wire), 0)} {
			for op := range len(admin.Ops) {
				f.Add(v, uint8(op))
			}
		}
	}
	f.Add([]byte{}, uint8(0))
	f.Add(make([]byte, protocol.SignatureSize+1), uint8(0))
	now := fuzzSigned.Add(time.Hour)
	f.Fuzz(func(t *testing.T, wire []byte, op uint8) {
		v := admin.NewVerifier([][32]byte{fuzzOperator.Public()}, 5*time.Minute)
		subject := admin.Subject(admin.Ops[int(op)%len(admin.Ops)])
		req, err := v.Verify(subject, wire, now)
		if err == nil {
			t.Fatalf("Verify accepted %x on %s: %+v", wire, subject, req)
		}
		if !errors.Is(err, admin.ErrUnauthorized) {
			t.Fatalf("Verify(%x) = %v, not ErrUnauthorized", wire, err)
		}
	})
}
