package events_test

import (
	"bytes"
	"errors"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

// Fixed parties: the keyserver whose key the projections trust, and
// another key.
var (
	fuzzKS    = fixedKey(0x4b)
	fuzzOther = fixedKey(0x4f)
	fuzzAlice = protocol.ClientID{0xa1}
	fuzzBob   = protocol.ClientID{0xb0}
	fuzzGroup = protocol.GroupID{0x67}
)

func fixedKey(b byte) *keys.SigningKey {
	seed := [32]byte{b, b}
	return keys.NewSigningKey(&seed)
}

// fuzzStored is a record of a history built without NATS.
type fuzzStored = events.Stored

// fuzzHistory signs a small valid history (two clients, a group, both
// added, one removed, a rekey) chained as Writer chains it, and returns
// its records and the next event of each aggregate, signed, unapplied.
func fuzzHistory(tb testing.TB) (history []fuzzStored, next [][]byte) {
	tb.Helper()
	heads := map[string]events.Head{}
	seq := uint64(0)
	sign := func(e *events.Event, ks *keys.SigningKey, at time.Time) events.Record {
		h := heads[e.Aggregate]
		e.Format, e.Seq, e.Time = events.Format, h.Seq+1, at.UnixNano()
		e.Prev = nil
		if h.Seq > 0 {
			e.Prev = h.Hash[:]
		}
		pub := fuzzKS.Public()
		e.Actor = pub[:]
		rec, err := events.Sign(e, ks)
		if err != nil {
			tb.Fatal(err)
		}
		return rec
	}
	at := time.Unix(1_700_000_000, 0)
	add := func(e *events.Event) {
		rec := sign(e, fuzzKS, at)
		seq++
		history = append(history, fuzzStored{Seq: seq, Subject: events.Subject(e.Aggregate), Record: rec})
		heads[e.Aggregate] = events.Head{Seq: e.Seq, Hash: rec.Hash(), StreamSeq: seq}
	}
	both := bundle.MemberDigest([]protocol.ClientID{fuzzAlice, fuzzBob})
	alone := bundle.MemberDigest([]protocol.ClientID{fuzzAlice})
	add(events.NewClientRegistered(fuzzAlice, [32]byte{1}, "alice"))
	add(events.NewClientRegistered(fuzzBob, [32]byte{2}, "bob"))
	add(events.NewGroupCreated(fuzzGroup, "ops", events.Policy{MaxMessages: 100, MaxAge: time.Hour}))
	add(events.NewEpoch(events.MembersAdded, fuzzGroup, 1, []protocol.ClientID{fuzzAlice, fuzzBob}, both, ""))
	add(events.NewEpoch(events.MembersRemoved, fuzzGroup, 2, []protocol.ClientID{fuzzBob}, alone, "left"))
	add(events.NewEpoch(events.GroupRekeyed, fuzzGroup, 3, nil, alone, "policy"))

	carol := protocol.ClientID{0xc0}
	for _, e := range []*events.Event{
		events.NewEpoch(events.MembersAdded, fuzzGroup, 4, []protocol.ClientID{fuzzBob}, both, ""),
		events.NewEpoch(events.GroupRekeyed, fuzzGroup, 4, nil, alone, ""),
		events.NewGroupDeleted(fuzzGroup),
		events.NewClientRevoked(fuzzBob, "lost"),
		events.NewClientRegistered(carol, [32]byte{3}, "carol"),
		events.NewGroupCreated(protocol.GroupID{0x68}, "dev", events.Policy{}),
	} {
		next = append(next, sign(e, fuzzKS, at.Add(time.Hour)))
	}
	// The same change signed by another key, and the next event of a
	// group with a member list that does not match its digest.
	next = append(next, sign(events.NewClientRevoked(fuzzAlice, ""), fuzzOther, at))
	next = append(next, sign(events.NewEpoch(events.GroupRekeyed, fuzzGroup, 4, nil, both, ""), fuzzKS, at))
	return history, next
}

// fuzzVariants returns b and damaged copies: truncated, extended,
// bit-flipped at a few places.
func fuzzVariants(b []byte) [][]byte {
	out := [][]byte{b, nil, b[:len(b)/2], append(bytes.Clone(b), 0)}
	for _, i := range []int{0, 1, 5, 40, len(b) / 2, len(b) - 65, len(b) - 1} {
		if i >= 0 && i < len(b) {
			c := bytes.Clone(b)
			c[i] ^= 0x01
			out = append(out, c)
		}
	}
	return out
}

// decodeBombs are records whose msgpack claims far more than the record
// holds: msgpack.Unmarshal allocated the claim before reading (4 GiB for
// the first).
var decodeBombs = [][]byte{
	{0x81, 0xa1, 'p', 0xc6, 0xff, 0xff, 0xff, 0xf0},                                   // prev: bin32 of 4 GiB
	{0x81, 0xa1, 'm', 0x81, 0xa1, 'c', 0xdd, 0x7f, 0xff, 0xff, 0xff},                  // members.clients: array32 of 2^31 ids
	{0x81, 0xa1, 't', 0xdb, 0x7f, 0xff, 0xff, 0xff},                                   // type: str32 of 2 GiB
	{0x82, 0xa1, 'v', 0x01, 0xa1, 'm', 0x81, 0xa1, 'c', 0xdd, 0x00, 0x0f, 0xff, 0xff}, // 1M ids in a short record
	{0x91, 0xdd, 0x7f, 0xff, 0xff, 0xff},                                              // an event as an array
}

// FuzzRecordDecode: Decode never panics, returns an error wrapping
// ErrMalformed and no event on failure, and on success an event whose
// shape checks hold and that msgpack.Unmarshal decodes identically.
func FuzzRecordDecode(f *testing.F) {
	history, next := fuzzHistory(f)
	for _, s := range history {
		for _, v := range fuzzVariants(s.Record) {
			f.Add(v)
		}
	}
	for _, rec := range next {
		f.Add(rec)
	}
	for _, b := range decodeBombs {
		f.Add(append(bytes.Clone(b), make([]byte, protocol.SignatureSize)...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := events.Record(data).Decode()
		if err != nil {
			if e != nil || !errors.Is(err, events.ErrMalformed) {
				t.Fatalf("Decode(%x) = %v, %v: want no event and ErrMalformed", data, e, err)
			}
			return
		}
		checkShape(t, e)
		var ref events.Event
		if err := msgpack.Unmarshal(data[:len(data)-protocol.SignatureSize], &ref); err != nil {
			t.Fatalf("Decode(%x) accepted what msgpack refuses: %v", data, err)
		}
		if !reflect.DeepEqual(*e, ref) {
			t.Fatalf("Decode(%x) = %+v, msgpack decodes %+v", data, *e, ref)
		}
	})
}

// checkShape checks what Decode promises of an event.
func checkShape(t *testing.T, e *events.Event) {
	t.Helper()
	if e.Format != events.Format || e.Seq == 0 || (e.Seq == 1) != (len(e.Prev) == 0) ||
		(len(e.Prev) != 0 && len(e.Prev) != 32) || (len(e.Actor) != 0 && len(e.Actor) != 32) {
		t.Fatalf("decoded event has a bad header: %+v", e)
	}
	payloads := 0
	var agg string
	if e.Client != nil {
		payloads++
		agg = events.ClientAggregate(e.Client.ID)
		if e.Type != events.ClientRegistered && e.Type != events.ClientRevoked {
			t.Fatalf("%s with a client payload", e.Type)
		}
	}
	if e.Group != nil {
		payloads++
		agg = events.GroupAggregate(e.Group.ID)
		if e.Type != events.GroupCreated && e.Type != events.GroupDeleted {
			t.Fatalf("%s with a group payload", e.Type)
		}
	}
	if e.Members != nil {
		payloads++
		agg = events.GroupAggregate(e.Members.Group)
		if e.Type != events.MembersAdded && e.Type != events.MembersRemoved && e.Type != events.GroupRekeyed || len(e.Members.Digest) != 32 {
			t.Fatalf("%s with a members payload, digest of %d bytes", e.Type, len(e.Members.Digest))
		}
	}
	if payloads != 1 || e.Aggregate != agg {
		t.Fatalf("decoded event with %d payloads, aggregate %q about %q", payloads, e.Aggregate, agg)
	}
}

// TestDecodeBombs: a record claiming gigabytes is refused without
// allocating them (before the fix, the first made msgpack allocate 4 GiB).
func TestDecodeBombs(t *testing.T) {
	for _, b := range decodeBombs {
		rec := append(bytes.Clone(b), make([]byte, protocol.SignatureSize)...)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		e, err := events.Record(rec).Decode()
		runtime.ReadMemStats(&after)
		if err == nil || e != nil {
			t.Errorf("Decode(%x) = %v, %v: want ErrMalformed", rec, e, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
			t.Errorf("Decode(%x) allocated %d bytes for a %d-byte record", rec, got, len(rec))
		}
	}
}

// TestDecodeMatchesMsgpack: every kind of event, and encodings msgpack
// accepts that Marshal does not make (an event as an array, a nil
// payload, an unknown field), decode as msgpack.Unmarshal decodes them.
func TestDecodeMatchesMsgpack(t *testing.T) {
	history, next := fuzzHistory(t)
	var recs [][]byte
	for _, s := range history {
		recs = append(recs, s.Record)
	}
	recs = append(recs, next...)
	for _, rec := range recs {
		e, err := events.Record(rec).Decode()
		if err != nil {
			t.Fatal(err)
		}
		var ref events.Event
		if err := msgpack.Unmarshal(rec[:len(rec)-protocol.SignatureSize], &ref); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*e, ref) {
			t.Fatalf("Decode = %+v, msgpack %+v", *e, ref)
		}
	}
	e, _ := events.Record(recs[0]).Decode()
	asArray, err := msgpack.Marshal([]any{e.Format, e.Type, e.Aggregate, e.Seq, e.Prev, e.Time, e.Actor, e.Request, e.Client, e.Group, e.Members})
	if err != nil {
		t.Fatal(err)
	}
	withExtra, err := msgpack.Marshal(map[string]any{"v": 1, "t": e.Type, "a": e.Aggregate, "n": 1, "c": e.Client, "g": nil, "zz": []int{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range [][]byte{asArray, withExtra} {
		rec := append(data, make([]byte, protocol.SignatureSize)...)
		got, err := events.Record(rec).Decode()
		if err != nil {
			t.Fatalf("Decode(%x): %v", rec, err)
		}
		if !reflect.DeepEqual(got.Client, e.Client) || got.Aggregate != e.Aggregate || got.Group != nil {
			t.Fatalf("Decode(%x) = %+v", rec, got)
		}
	}
}

// fuzzProjection is a projection that has applied the history.
func fuzzProjection(tb testing.TB, history []fuzzStored, deferred bool) *events.Projection {
	p := events.NewProjection(fuzzKS.Public())
	p.DeferSignatures(deferred)
	for _, s := range history {
		if _, err := p.Apply(s); err != nil {
			tb.Fatal(err)
		}
	}
	return p
}

func digestOf(p *events.Projection) (d [32]byte) {
	p.Read(func(s *events.State) { d = s.Digest() })
	return d
}

// FuzzProjectionApply applies arbitrary records to projections that hold
// a small valid history. Apply must never panic; a projection that checks
// signatures must refuse every record (the fuzzer cannot sign) and keep
// its state digest; one that defers them may apply a record only if
// VerifyHeads then fails. With resign set the record is signed by the
// trusted key first, to reach the state checks behind the signature: then
// only panics are errors, and a record applied twice must be refused the
// second time.
func FuzzProjectionApply(f *testing.F) {
	history, next := fuzzHistory(f)
	genuine := map[string]bool{} // the only signed records the fuzzer can make
	for _, rec := range next {
		genuine[string(rec)] = true
		for _, v := range fuzzVariants(rec)[1:] {
			f.Add(v, false)
		}
		f.Add(rec[:len(rec)-protocol.SignatureSize], true)
	}
	for _, s := range history {
		f.Add([]byte(s.Record), false)
	}
	strict := fuzzProjection(f, history, false)
	want := digestOf(strict)
	// Projections that applied a record are rebuilt; the others are as
	// good as new (a refused record changes nothing).
	var signed, deferred *events.Projection
	seq := uint64(len(history)) + 1
	f.Fuzz(func(t *testing.T, data []byte, resign bool) {
		if resign {
			sig := fuzzKS.Sign(append([]byte(protocol.LabelEvent), data...))
			data = append(bytes.Clone(data), sig[:]...)
		}
		resign = resign || genuine[string(data)]
		m := fuzzStored{Seq: seq, Subject: streams.EventPrefix + "client.00", Record: data}
		if e, err := events.Record(data).Decode(); err == nil {
			m.Subject = events.Subject(e.Aggregate)
		}
		if resign {
			if signed == nil {
				signed = fuzzProjection(t, history, false)
			}
			if _, err := signed.Apply(m); err == nil {
				digestOf(signed)
				if _, err := signed.Apply(m); err == nil {
					t.Fatalf("record %x applied twice", data)
				}
				signed = nil
			}
			return
		}
		e, err := strict.Apply(m)
		if err == nil || e != nil || digestOf(strict) != want {
			t.Fatalf("Apply(%x) = %v, %v and the state changed: an unsigned record was applied", data, e, err)
		}
		var ae *events.ApplyError
		if !errors.As(err, &ae) || ae.Seq != seq {
			t.Fatalf("Apply(%x) = %v, want an *ApplyError for %d", data, err, seq)
		}
		if deferred == nil {
			deferred = fuzzProjection(t, history, true)
		}
		if _, err := deferred.Apply(m); err == nil {
			if deferred.VerifyHeads() == nil {
				t.Fatalf("Apply(%x) applied an unsigned record and VerifyHeads accepted it", data)
			}
			deferred = nil
		}
	})
}
