package events_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/events/record"
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
	sign := func(e *record.Event, ks *keys.SigningKey, at time.Time) record.Record {
		h := heads[e.Aggregate()]
		e.Seq, e.Prev, e.Time, e.Actor = h.Seq+1, h.Hash, at.UnixNano(), fuzzKS.Public()
		rec, err := record.Sign(e, ks)
		if err != nil {
			tb.Fatal(err)
		}
		return rec
	}
	at := time.Unix(1_700_000_000, 0)
	add := func(e *record.Event) {
		rec := sign(e, fuzzKS, at)
		seq++
		history = append(history, fuzzStored{Seq: seq, Subject: events.Subject(e.Aggregate()), Record: rec})
		heads[e.Aggregate()] = events.Head{Seq: e.Seq, Hash: rec.Hash(), StreamSeq: seq}
	}
	both := bundle.MemberDigest([]protocol.ClientID{fuzzAlice, fuzzBob})
	alone := bundle.MemberDigest([]protocol.ClientID{fuzzAlice})
	add(record.NewClientRegistered(fuzzAlice, [32]byte{1}, "alice"))
	add(record.NewClientRegistered(fuzzBob, [32]byte{2}, "bob"))
	add(record.NewGroupCreated(fuzzGroup, "ops", record.Policy{MaxMessages: 100, MaxAge: time.Hour}))
	add(record.NewEpoch(record.MembersAdded, fuzzGroup, 1, []protocol.ClientID{fuzzAlice, fuzzBob}, both, ""))
	add(record.NewEpoch(record.MembersRemoved, fuzzGroup, 2, []protocol.ClientID{fuzzBob}, alone, "left"))
	add(record.NewEpoch(record.GroupRekeyed, fuzzGroup, 3, nil, alone, "policy"))

	carol := protocol.ClientID{0xc0}
	for _, e := range []*record.Event{
		record.NewEpoch(record.MembersAdded, fuzzGroup, 4, []protocol.ClientID{fuzzBob}, both, ""),
		record.NewEpoch(record.GroupRekeyed, fuzzGroup, 4, nil, alone, ""),
		record.NewGroupDeleted(fuzzGroup),
		record.NewClientRevoked(fuzzBob, "lost"),
		record.NewClientRegistered(carol, [32]byte{3}, "carol"),
		record.NewGroupCreated(protocol.GroupID{0x68}, "dev", record.Policy{}),
	} {
		next = append(next, sign(e, fuzzKS, at.Add(time.Hour)))
	}
	// The same change signed by another key, and the next event of a
	// group with a member list that does not match its digest.
	next = append(next, sign(record.NewClientRevoked(fuzzAlice, ""), fuzzOther, at))
	next = append(next, sign(record.NewEpoch(record.GroupRekeyed, fuzzGroup, 4, nil, both, ""), fuzzKS, at))
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

// fuzzProjection is a projection that has applied the history.
func fuzzProjection(tb testing.TB, history []fuzzStored) *events.Projection {
	p := events.NewProjection(fuzzKS.Public())
	for _, s := range history {
		if _, err := p.Apply(s); err != nil {
			tb.Fatal(err)
		}
	}
	return p
}

// fuzzLoader is a loader that has applied the history, its signatures
// deferred.
func fuzzLoader(tb testing.TB, history []fuzzStored) *events.Loader {
	ld := events.NewLoader(fuzzKS.Public())
	for _, s := range history {
		if _, err := ld.Apply(s); err != nil {
			tb.Fatal(err)
		}
	}
	return ld
}

func digestOf(p *events.Projection) (d [32]byte) {
	p.Read(func(s *fold.State) { d = s.Digest() })
	return d
}

// FuzzProjectionApply applies arbitrary records to projections that hold
// a small valid history. Apply must never panic; a projection that checks
// signatures must refuse every record (the fuzzer cannot sign) and keep
// its state digest; a Loader, which defers them, may apply a record only
// if VerifyHeads then fails. With resign set the record is signed by the
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
	strict := fuzzProjection(f, history)
	want := digestOf(strict)
	// Projections that applied a record are rebuilt; the others are as
	// good as new (a refused record changes nothing).
	var signed *events.Projection
	var deferred *events.Loader
	seq := uint64(len(history)) + 1
	f.Fuzz(func(t *testing.T, data []byte, resign bool) {
		if resign {
			sig := fuzzKS.Sign(append([]byte(protocol.LabelEvent), data...))
			data = append(bytes.Clone(data), sig[:]...)
		}
		resign = resign || genuine[string(data)]
		m := fuzzStored{Seq: seq, Subject: streams.EventPrefix + "client.00", Record: data}
		if e, err := record.Record(data).Decode(); err == nil {
			m.Subject = events.Subject(e.Aggregate())
		}
		if resign {
			if signed == nil {
				signed = fuzzProjection(t, history)
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
			deferred = fuzzLoader(t, history)
		}
		if _, err := deferred.Apply(m); err == nil {
			if deferred.VerifyHeads() == nil {
				t.Fatalf("Apply(%x) applied an unsigned record and VerifyHeads accepted it", data)
			}
			deferred = nil
		}
	})
}
