package protocol_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/protocol"
)

func init() {
	walkers["event"] = walkEvent
	walkers["checkpoint"] = walkCheckpoint
}

// walkEvent runs an event case (PROTOCOL.md §15.9): decode, subject,
// chain, signature, in that order; for ok cases the decoded fields, the
// canonical re-encoding, the hash and the signature input are checked
// independently of package record.
func walkEvent(t *testing.T, r *vectorReader) error {
	rec := record.Record(r.bytes("record"))
	e, err := rec.Decode()
	if err != nil {
		return err
	}
	subject := r.v.Get("subject")
	if subject != "comm.events."+e.Aggregate() {
		return protocol.ErrEventWrongSubject
	}
	if err := e.Follows(r.uint("head_seq"), r.b32("head_hash")); err != nil {
		return err
	}
	ks := r.b32("keyserver_public")
	if err := rec.Verify(&ks); err != nil {
		return err
	}
	if r.v.Get("expect") != "ok" {
		return nil
	}
	body, sig := rec[:len(rec)-protocol.SignatureSize], rec[len(rec)-protocol.SignatureSize:]
	if !ed25519.Verify(ks[:], append([]byte(protocol.LabelEvent), body...), sig) {
		t.Fatal("the signature does not verify over LabelEvent | body")
	}
	h := sha256.Sum256(rec)
	r.equal("hash", h[:])
	want := eventFromFields(t, r)
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("decoded %+v, the file's fields say %+v", e, want)
	}
	enc, err := record.Encode(want)
	if err != nil || !bytes.Equal(enc, body) {
		t.Fatalf("encoding the file's fields: %x, %v; the record's body is %x", enc, err, body)
	}
	if r.v.Get("type_name") != e.Type.String() || r.v.Get("aggregate") != e.Aggregate() {
		t.Fatalf("type %s of aggregate %s, the file says %s of %s", e.Type, e.Aggregate(), r.v.Get("type_name"), r.v.Get("aggregate"))
	}
	return nil
}

// eventFromFields builds the event an ok case's fields describe.
func eventFromFields(t *testing.T, r *vectorReader) *record.Event {
	e := &record.Event{Type: record.Type(r.uint("type")), Seq: r.uint("seq"), Prev: r.b32("prev"),
		Time: int64(r.uint("time")), Actor: r.b32("actor"), Request: [16]byte(r.bytes("request"))}
	switch e.Type {
	case record.ClientRegistered:
		e.Client = &record.ClientPayload{ID: r.b32("client"), Wrap: r.b32("wrap"), Name: string(r.bytes("name"))}
	case record.ClientRevoked:
		e.Client = &record.ClientPayload{ID: r.b32("client"), Reason: string(r.bytes("reason"))}
	case record.GroupCreated:
		e.Group = &record.GroupPayload{ID: protocol.GroupID(r.bytes("group")), Name: string(r.bytes("name")),
			Policy: record.Policy{MaxMessages: r.uint("max_messages"), MaxAge: time.Duration(r.uint("max_age"))}}
	case record.GroupDeleted:
		e.Group = &record.GroupPayload{ID: protocol.GroupID(r.bytes("group"))}
	default:
		m := &record.MembersPayload{Group: protocol.GroupID(r.bytes("group")), Epoch: protocol.Epoch(r.uint("epoch")),
			Digest: r.b32("digest"), Reason: string(r.bytes("reason"))}
		ids := r.bytes("clients")
		if uint64(len(ids)) != 32*r.uint("count") {
			t.Fatalf("%d bytes of clients for a count of %d", len(ids), r.uint("count"))
		}
		for ; len(ids) > 0; ids = ids[32:] {
			m.Clients = append(m.Clients, protocol.ClientID(ids[:32]))
		}
		e.Members = m
	}
	return e
}

// walkCheckpoint runs a checkpoint case (PROTOCOL.md §15.9): the log hash
// of the listed records, computed as §15.6 writes it, must equal log;
// then the checkpoint is parsed and verified.
func walkCheckpoint(t *testing.T, r *vectorReader) error {
	var seqs []uint64
	for _, f := range r.v.Fields {
		if f.Name == "stream_seq" {
			n, err := strconv.ParseUint(f.Value, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, n)
		}
	}
	hashes, err := r.v.AllBytes("record_hash")
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs) != len(hashes) || len(seqs) == 0 {
		t.Fatalf("%d stream sequences for %d record hashes", len(seqs), len(hashes))
	}
	var log [32]byte
	for i, seq := range seqs {
		in := binary.BigEndian.AppendUint64(bytes.Clone(log[:]), seq)
		log = sha256.Sum256(append(in, hashes[i]...))
	}
	r.equal("log", log[:])
	ks := r.b32("keyserver_public")
	c, err := record.ParseCheckpoint(r.bytes("checkpoint"), &ks)
	if err != nil {
		return err
	}
	if c.Seq != seqs[len(seqs)-1] || c.Log != log {
		t.Fatalf("checkpoint at %d with log %x, want %d and %x", c.Seq, c.Log, seqs[len(seqs)-1], log)
	}
	return nil
}
