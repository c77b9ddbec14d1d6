package bundle_test

import (
	"testing"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/keys"
)

func TestWrapOpen(t *testing.T) {
	ks, _ := keys.GenerateSigningKey(nil)
	member, _ := keys.GenerateClientIdentity(nil)
	groupKey := [32]byte{42}
	digest := bundle.MemberDigest([]protocol.ClientID{member.ID()})
	b, err := bundle.Wrap(ks, protocol.GroupID{1}, 3, bundle.Recipient{ID: member.ID(), Wrap: member.Wrap.Public()}, &digest, &groupKey)
	if err != nil {
		t.Fatal(err)
	}
	wire := b.Marshal()
	if len(wire) != bundle.Size {
		t.Fatalf("bundle is %d bytes, want %d", len(wire), bundle.Size)
	}
	back, err := bundle.Parse(wire)
	if err != nil {
		t.Fatal(err)
	}
	pub := ks.Public()
	got, err := back.Open(&pub, member)
	if err != nil || got != groupKey {
		t.Fatalf("open: %x %v", got, err)
	}
}

func TestMemberDigestIgnoresOrder(t *testing.T) {
	a, b, c := protocol.ClientID{1}, protocol.ClientID{2}, protocol.ClientID{3}
	if bundle.MemberDigest([]protocol.ClientID{a, b, c}) != bundle.MemberDigest([]protocol.ClientID{c, a, b}) {
		t.Fatal("digest depends on the order of the list")
	}
	if bundle.MemberDigest([]protocol.ClientID{a, b}) == bundle.MemberDigest([]protocol.ClientID{a, b, c}) {
		t.Fatal("digest ignores a member")
	}
}
