package record_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
)

var (
	testKS    = fixedKey(0x4b)
	testAlice = protocol.ClientID{0xa1, 0x01}
	testBob   = protocol.ClientID{0xb0, 0x02}
	testGroup = protocol.GroupID{0x67, 0x03}
)

func fixedKey(b byte) *keys.SigningKey {
	seed := [32]byte{b, b}
	return keys.NewSigningKey(&seed)
}

// samples returns one event of every type, completed as a writer would.
func samples() []*record.Event {
	es := []*record.Event{
		record.NewClientRegistered(testAlice, [32]byte{1, 2, 3}, "alice"),
		record.NewClientRevoked(testBob, "lost the device"),
		record.NewGroupCreated(testGroup, "ops", record.Policy{MaxMessages: 1000, MaxAge: 24 * time.Hour}),
		record.NewEpoch(record.MembersAdded, testGroup, 1, []protocol.ClientID{testBob, testAlice}, [32]byte{0xd1}, ""),
		record.NewEpoch(record.MembersRemoved, testGroup, 2, []protocol.ClientID{testBob}, [32]byte{0xd2}, "left"),
		record.NewEpoch(record.GroupRekeyed, testGroup, 3, nil, [32]byte{0xd2}, "policy"),
		record.NewGroupDeleted(testGroup),
	}
	for i, e := range es {
		e.Seq, e.Time, e.Actor = uint64(i+1), 1_700_000_000_000_000_000+int64(i), testKS.Public()
		e.Prev = [32]byte{byte(i), 0xee}
		e.Request = [16]byte{0x11, byte(i)}
	}
	return es
}

func sign(t testing.TB, e *record.Event) record.Record {
	t.Helper()
	rec, err := record.Sign(e, testKS)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestRoundTrip: every type decodes to the event it was encoded from, and
// encodes again to the same bytes; the signature verifies and the chain
// check sees the position and the previous hash.
func TestRoundTrip(t *testing.T) {
	pub := testKS.Public()
	for _, e := range samples() {
		rec := sign(t, e)
		got, err := rec.Decode()
		if err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("%s: decoded %+v, want %+v", e.Type, got, e)
		}
		body, err := record.Encode(got)
		if err != nil || !bytes.Equal(body, rec[:len(rec)-protocol.SignatureSize]) {
			t.Fatalf("%s: encode(decode(b)) != b: %v", e.Type, err)
		}
		if err := rec.Verify(&pub); err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		if err := got.Follows(e.Seq-1, e.Prev); err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		if err := got.Follows(e.Seq-1, [32]byte{}); !errors.Is(err, record.ErrChainBroken) {
			t.Fatalf("%s: follows another hash: %v", e.Type, err)
		}
		if err := got.Follows(e.Seq, e.Prev); !errors.Is(err, record.ErrChainBroken) {
			t.Fatalf("%s: follows at another position: %v", e.Type, err)
		}
	}
}

// TestEncodeRefusesWhatDecodeRefuses: an event with no record (a field
// its type does not carry, two payloads, position 0, epoch 0, a rekey
// naming clients, an unknown type) is not encoded: every body Encode
// returns decodes to its event.
func TestEncodeRefusesWhatDecodeRefuses(t *testing.T) {
	bad := map[string]func(e *record.Event){
		"position 0":           func(e *record.Event) { e.Seq = 0 },
		"unknown type":         func(e *record.Event) { e.Type = 0 },
		"name on a revocation": func(e *record.Event) { e.Client.Name = "x" },
		"two payloads":         func(e *record.Event) { e.Group = &record.GroupPayload{} },
		"no payload":           func(e *record.Event) { e.Client = nil },
	}
	for name, change := range bad {
		e := samples()[1] // a revocation
		change(e)
		if _, err := record.Encode(e); !errors.Is(err, record.ErrMalformed) {
			t.Errorf("%s: Encode = %v, want ErrMalformed", name, err)
		}
	}
	for name, change := range map[string]func(m *record.MembersPayload){
		"epoch 0":              func(m *record.MembersPayload) { m.Epoch = 0 },
		"epoch 2^32-1":         func(m *record.MembersPayload) { m.Epoch = 1<<32 - 1 },
		"a rekey with clients": func(m *record.MembersPayload) { m.Clients = []protocol.ClientID{testAlice} },
	} {
		e := samples()[5] // a rekey
		change(e.Members)
		if _, err := record.Encode(e); !errors.Is(err, record.ErrMalformed) {
			t.Errorf("%s: Encode = %v, want ErrMalformed", name, err)
		}
	}
	e := samples()[6]
	e.Group.Name = "a deletion names no group"
	if _, err := record.Encode(e); !errors.Is(err, record.ErrMalformed) {
		t.Errorf("a name on a deletion: Encode = %v, want ErrMalformed", err)
	}
}

// TestRefusesNonCanonical: every byte string but the encoder's output is
// refused with nothing returned: truncations, a trailing byte, another
// version (the next, the previous, 0), an unknown type, position 0, a rekey naming clients, a count of
// clients the record cannot hold, and the msgpack encoding of the same
// event that the decoder of protocol version 1 accepted (with its field
// order, or any other, and integers of any width).
func TestRefusesNonCanonical(t *testing.T) {
	refuse := func(name string, b []byte, want error) {
		t.Helper()
		e, err := record.Record(b).Decode()
		if e != nil || !errors.Is(err, want) {
			t.Errorf("%s: Decode = %v, %v; want nothing and %v", name, e, err, want)
		}
	}
	for _, e := range samples() {
		rec := sign(t, e)
		for n := range len(rec) {
			refuse("truncated", rec[:n], record.ErrMalformed)
		}
		refuse("a trailing byte", append(bytes.Clone(rec), 0), record.ErrMalformed)
		refuse("the next version", with(rec, 0, protocol.Version+1), record.ErrVersion)
		refuse("the previous version", with(rec, 0, protocol.Version-1), record.ErrVersion)
		refuse("version 0", with(rec, 0, 0), record.ErrVersion)
		refuse("type 0", with(rec, 1, 0), record.ErrMalformed)
		refuse("type 8", with(rec, 1, 8), record.ErrMalformed)
		refuse("position 0", with(rec, 2, 0, 0, 0, 0, 0, 0, 0, 0), record.ErrMalformed)
		// The v1 encoding of the same event, as msgpack.Marshal made it.
		refuse("msgpack", append(legacyMsgpack(t, e), make([]byte, protocol.SignatureSize)...), record.ErrVersion)
	}
	rekey := sign(t, samples()[5])
	count := record.HeaderSize + protocol.GroupIDSize + 4 + protocol.HashSize
	refuse("a rekey naming a client", insertClient(rekey, count), record.ErrMalformed)
	added := sign(t, samples()[3])
	refuse("a count one above the clients", with(added, count, 0, 0, 0, 3), record.ErrMalformed)
	refuse("a count one below the clients", with(added, count, 0, 0, 0, 1), record.ErrMalformed)
	refuse("epoch 0", with(added, count-protocol.HashSize-4, 0, 0, 0, 0), record.ErrMalformed)
	name := record.HeaderSize + 2*protocol.PublicKeySize
	registered := sign(t, samples()[0])
	refuse("a name length past the end", with(registered, name, 0, 6), record.ErrMalformed)
	refuse("a name length short of the end", with(registered, name, 0, 4), record.ErrMalformed)
}

// with returns a copy of b with the bytes at off replaced by v.
func with(b []byte, off int, v ...byte) []byte {
	c := bytes.Clone(b)
	copy(c[off:], v)
	return c
}

// insertClient makes a rekey record name one client (count 1 and an id).
func insertClient(rec []byte, count int) []byte {
	out := bytes.Clone(rec[:count])
	out = binary.BigEndian.AppendUint32(out, 1)
	out = append(out, testAlice[:]...)
	return append(out, rec[count+4:]...)
}

// legacyMsgpack is the encoding of e by protocol version 1's record:
// msgpack.Marshal of a map with short keys.
func legacyMsgpack(t *testing.T, e *record.Event) []byte {
	m := map[string]any{"v": 1, "t": e.Type.String(), "a": e.Aggregate(), "n": e.Seq, "ts": e.Time, "by": e.Actor[:]}
	if e.Seq > 1 {
		m["p"] = e.Prev[:]
	}
	switch {
	case e.Client != nil:
		m["c"] = map[string]any{"id": e.Client.ID[:], "wrap": e.Client.Wrap[:], "name": e.Client.Name}
	case e.Group != nil:
		m["g"] = map[string]any{"id": e.Group.ID[:], "name": e.Group.Name, "policy": map[string]any{}}
	case e.Members != nil:
		m["m"] = map[string]any{"g": e.Members.Group[:], "e": uint32(e.Members.Epoch), "d": e.Members.Digest[:]}
	}
	b, err := msgpack.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodeBombs: a record claiming more clients than it holds is refused
// before anything is allocated for them.
func TestDecodeBombs(t *testing.T) {
	added := sign(t, samples()[3])
	count := record.HeaderSize + protocol.GroupIDSize + 4 + protocol.HashSize
	for _, n := range []uint32{1 << 31, 1<<32 - 1, 1 << 20} {
		bomb := with(added, count, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		e, err := record.Record(bomb).Decode()
		runtime.ReadMemStats(&after)
		if err == nil || e != nil {
			t.Errorf("count %d: Decode = %v, %v; want ErrMalformed", n, e, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 1<<16 {
			t.Errorf("count %d: Decode allocated %d bytes for a %d-byte record", n, got, len(bomb))
		}
	}
}

// TestSignatureCoversEveryByte: changing any byte of the body or the
// signature makes Verify fail.
func TestSignatureCoversEveryByte(t *testing.T) {
	pub := testKS.Public()
	rec := sign(t, samples()[3])
	for i := range rec {
		if err := record.Record(with(rec, i, rec[i]^0x20)).Verify(&pub); !errors.Is(err, record.ErrBadSignature) {
			t.Fatalf("byte %d changed: Verify = %v", i, err)
		}
	}
	other := fixedKey(0x4f).Public()
	if err := rec.Verify(&other); !errors.Is(err, record.ErrBadSignature) {
		t.Fatalf("another key: Verify = %v", err)
	}
}

// TestAggregates: the aggregate of each type is the client or group its
// payload names, and parses back.
func TestAggregates(t *testing.T) {
	for _, e := range samples() {
		name := e.Aggregate()
		k, ok := record.ParseAggregate(name)
		if !ok || k != e.Key() || k.Name() != name {
			t.Fatalf("%s: aggregate %q parses to %+v, %v", e.Type, name, k, ok)
		}
	}
	for _, bad := range []string{"", "client.", "group.00", "client." + string(bytes.Repeat([]byte("A"), 64)), "member.0123"} {
		if _, ok := record.ParseAggregate(bad); ok {
			t.Errorf("ParseAggregate(%q) accepted", bad)
		}
	}
}

// TestTypeNames: the names of the types are stable (audits show them, and
// PROTOCOL.md §15.3 lists them), and an unknown type is named by number.
func TestTypeNames(t *testing.T) {
	want := []string{"", "client.registered", "client.revoked", "group.created", "group.members_added",
		"group.members_removed", "group.rekeyed", "group.deleted"}
	for i, name := range want[1:] {
		if got := record.Type(i + 1).String(); got != name {
			t.Errorf("type %d is %q, want %q", i+1, got, name)
		}
	}
	if got := record.Type(8).String(); got != "type(8)" {
		t.Errorf("type 8 is %q", got)
	}
}
