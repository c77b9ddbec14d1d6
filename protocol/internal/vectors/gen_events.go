package vectors

import (
	"bytes"
	"encoding/binary"
	"slices"

	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/keys"
)

// stored is one record of the generated log, with where it was stored.
type stored struct {
	streamSeq uint64
	subject   string
	rec       record.Record
	e         *record.Event
	headSeq   uint64   // the aggregate's head before it
	headHash  [32]byte // and that head's hash (zeros at the genesis)
}

// eventLog is a small genuine log: two clients, a group they join and
// leave, a rekey and the group's deletion, signed by one keyserver key.
type eventLog struct {
	ks    *keys.SigningKey
	out   []stored
	heads map[string]head
}

// head is where an aggregate's chain stands.
type head struct {
	Seq  uint64
	Hash [32]byte
}

func (g *gen) eventLog() *eventLog {
	seed := g.b32()
	l := &eventLog{ks: keys.NewSigningKey(&seed), heads: map[string]head{}}
	alice, bob, operator := protocol.ClientID(g.b32()), protocol.ClientID(g.b32()), g.b32()
	wa, wb := g.b32(), g.b32()
	group := protocol.GroupID(g.bytes(protocol.GroupIDSize))
	byOperator := func(e *record.Event) *record.Event {
		e.Actor = operator
		copy(e.Request[:], g.bytes(record.RequestSize))
		return e
	}
	both, alone := bundle.MemberDigest([]protocol.ClientID{alice, bob}), bundle.MemberDigest([]protocol.ClientID{alice})
	for _, e := range []*record.Event{
		byOperator(record.NewClientRegistered(alice, wa, "alice")),
		byOperator(record.NewClientRegistered(bob, wb, "bob")),
		byOperator(record.NewGroupCreated(group, "ops", record.Policy{MaxMessages: 10000, MaxAge: 7 * 24 * 3600 * 1e9})),
		byOperator(record.NewEpoch(record.MembersAdded, group, 1, []protocol.ClientID{bob, alice}, both, "")),
		record.NewEpoch(record.MembersRemoved, group, 2, []protocol.ClientID{bob}, alone, "client revoked"),
		byOperator(record.NewClientRevoked(bob, "device lost")),
		record.NewEpoch(record.GroupRekeyed, group, 3, nil, alone, "policy: 10000 messages"),
		byOperator(record.NewGroupDeleted(group)),
	} {
		g.check(l.add(e))
	}
	return l
}

// add completes e as the keyserver's writer does, signs and stores it.
func (l *eventLog) add(e *record.Event) error {
	agg := e.Aggregate()
	h := l.heads[agg]
	e.Seq, e.Prev = h.Seq+1, h.Hash
	e.Time = 1_767_225_600_000_000_000 + int64(len(l.out))*61_000_000_123
	if e.Actor == ([32]byte{}) {
		e.Actor = l.ks.Public()
	}
	rec, err := record.Sign(e, l.ks)
	if err != nil {
		return err
	}
	l.out = append(l.out, stored{streamSeq: uint64(len(l.out) + 1), subject: "comm.events." + agg, rec: rec, e: e, headSeq: h.Seq, headHash: h.Hash})
	l.heads[agg] = head{Seq: e.Seq, Hash: rec.Hash()}
	return nil
}

// signBody signs any body, canonical or not, with the log's key.
func (l *eventLog) signBody(body []byte) []byte {
	sig := l.ks.Sign(append([]byte(protocol.LabelEvent), body...))
	return append(bytes.Clone(body), sig[:]...)
}

// eventCase emits an event vector: rec read from subject, after the head.
func (g *gen) eventCase(l *eventLog, name, comment, expect, subject string, headSeq uint64, headHash [32]byte, rec []byte) *Vector {
	v := g.emit("event-"+name, comment, "event", expect)
	pub := l.ks.Public()
	v.add("keyserver_public", pub[:])
	v.add("subject", subject)
	v.add("head_seq", headSeq)
	v.add("head_hash", headHash[:])
	v.add("record", rec)
	return v
}

func (g *gen) events() {
	l := g.eventLog()
	names := map[record.Type]string{
		record.ClientRegistered: "client-registered", record.ClientRevoked: "client-revoked",
		record.GroupCreated: "group-created", record.MembersAdded: "members-added",
		record.MembersRemoved: "members-removed", record.GroupRekeyed: "group-rekeyed", record.GroupDeleted: "group-deleted",
	}
	done := map[record.Type]bool{}
	for _, s := range l.out {
		if done[s.e.Type] {
			continue
		}
		done[s.e.Type] = true
		v := g.eventCase(l, "ok-"+names[s.e.Type], "A genuine "+s.e.Type.String()+" record, the next link of its aggregate's chain; its decoded fields, its hash.",
			"ok", s.subject, s.headSeq, s.headHash, s.rec)
		addEventFields(v, s)
	}
	g.badEvents(l)
	g.nonCanonicalEvents(l)
	g.checkpoints(l)
}

// addEventFields writes the decoded event of an ok case.
func addEventFields(v *Vector, s stored) {
	e := s.e
	v.add("type", uint8(e.Type))
	v.add("type_name", e.Type.String())
	v.add("aggregate", e.Aggregate())
	v.add("seq", e.Seq)
	v.add("prev", e.Prev[:])
	v.add("time", e.Time)
	v.add("actor", e.Actor[:])
	v.add("request", e.Request[:])
	switch {
	case e.Client != nil:
		v.add("client", e.Client.ID[:])
		if e.Type == record.ClientRegistered {
			v.add("wrap", e.Client.Wrap[:])
			v.add("name", []byte(e.Client.Name))
		} else {
			v.add("reason", []byte(e.Client.Reason))
		}
	case e.Group != nil:
		v.add("group", e.Group.ID[:])
		if e.Type == record.GroupCreated {
			v.add("max_messages", e.Group.Policy.MaxMessages)
			v.add("max_age", int64(e.Group.Policy.MaxAge))
			v.add("name", []byte(e.Group.Name))
		}
	default:
		m := e.Members
		v.add("group", m.Group[:])
		v.add("epoch", uint32(m.Epoch))
		v.add("digest", m.Digest[:])
		v.add("count", len(m.Clients))
		var ids []byte
		for _, id := range m.Clients {
			ids = append(ids, id[:]...)
		}
		v.add("clients", ids)
		v.add("reason", []byte(m.Reason))
	}
	h := s.rec.Hash()
	v.add("hash", h[:])
}

// badEvents: well-formed records that must not be applied.
func (g *gen) badEvents(l *eventLog) {
	added, removed := l.out[3], l.out[4]
	other := g.b32()
	body := added.rec[:len(added.rec)-protocol.SignatureSize]
	sig := keys.NewSigningKey(&other).Sign(append([]byte(protocol.LabelEvent), body...))
	g.eventCase(l, "other-signer", "The members-added record signed by another key.", "bad_event_signature",
		added.subject, added.headSeq, added.headHash, append(bytes.Clone(body), sig[:]...))
	epoch := record.HeaderSize + protocol.GroupIDSize + 3
	g.eventCase(l, "flipped-epoch", "The members-added record with bit 1 of its epoch flipped (epoch 3 for 1): the signature no longer covers it.",
		"bad_event_signature", added.subject, added.headSeq, added.headHash, withByte(added.rec, epoch, added.rec[epoch]^2))
	g.eventCase(l, "chain-skipped", "The members-removed record (position 3) read right after the group's first record: one record of the chain is missing.",
		"event_chain_broken", removed.subject, added.headSeq, added.headHash, removed.rec)
	forkHead := l.out[3].rec.Hash()
	forkHead[0] ^= 1
	g.eventCase(l, "chain-other-prev", "The members-removed record after a head at its position whose hash is not the one it names: a fork.",
		"event_chain_broken", removed.subject, removed.headSeq, forkHead, removed.rec)
	registered := l.out[0]
	g.eventCase(l, "wrong-subject", "The members-added record stored on the subject of a client's aggregate.", "event_wrong_subject",
		registered.subject, 0, [32]byte{}, added.rec)
	genesis := l.out[1]
	g.eventCase(l, "genesis-with-prev", "The registration of bob (position 1) read after a head of position 0 that is not the genesis value: prev must be 32 zero bytes.",
		"event_chain_broken", genesis.subject, 0, forkHead, genesis.rec)
}

// nonCanonicalEvents: byte strings that are not the encoding of any event,
// each signed by the keyserver's key: a valid signature does not make them
// acceptable.
func (g *gen) nonCanonicalEvents(l *eventLog) {
	added := l.out[3]
	body := added.rec[:len(added.rec)-protocol.SignatureSize]
	bad := func(name, comment, expect string, b []byte) {
		g.eventCase(l, name, comment, expect, added.subject, added.headSeq, added.headHash, l.signBody(b))
	}
	count := record.HeaderSize + protocol.GroupIDSize + 4 + protocol.HashSize
	bad("trailing-byte", "The members-added body with one byte more at its end, then signed.", "event_malformed", append(bytes.Clone(body), 0))
	bad("truncated-body", "The members-added body without its last byte (the reason's length claims one more), then signed.", "event_malformed", body[:len(body)-1])
	bad("count-high", "The members-added body whose client count is one more than the clients it holds, then signed.", "event_malformed",
		withUint32(body, count, 3))
	bad("count-huge", "The members-added body claiming 2^32-1 clients: refused before anything is allocated for them.", "event_malformed",
		withUint32(body, count, 1<<32-1))
	bad("epoch-zero", "The members-added body with epoch 0, then signed.", "event_malformed", withUint32(body, record.HeaderSize+protocol.GroupIDSize, 0))
	bad("seq-zero", "The members-added body at position 0, then signed.", "event_malformed", withUint64(body, 2, 0))
	bad("unknown-type", "The members-added body with type 8, then signed.", "event_malformed", withByte(body, 1, 8))
	bad("version", "The members-added body with the next protocol version, then signed.", "event_version", withByte(body, 0, protocol.Version+1))
	rekey := l.out[6]
	rb := rekey.rec[:len(rekey.rec)-protocol.SignatureSize]
	withClient := slices.Concat(rb[:count], []byte{0, 0, 0, 1}, added.e.Members.Clients[0][:], rb[count+4:])
	g.eventCase(l, "rekey-naming-client", "The group-rekeyed body naming one client (a rekey names none), then signed.", "event_malformed",
		rekey.subject, rekey.headSeq, rekey.headHash, l.signBody(withClient))
	whole := l.out[0].rec
	g.eventCase(l, "short", "The first 177 bytes of a registration: shorter than the smallest record (178 bytes).", "event_malformed",
		l.out[0].subject, 0, [32]byte{}, whole[:record.MinSize-1])
	g.eventCase(l, "msgpack", "Alice's registration as protocol version 1 encoded it (msgpack of a map with short keys), signed: not a record of this version.",
		"event_version", l.out[0].subject, 0, [32]byte{}, l.signBody(legacyRegistration(l.out[0].e)))
}

// legacyRegistration is the msgpack map protocol version 1 wrote for a
// registration: {"v":1,"t":"client.registered","a":…,"n":1,"ts":…,"by":…,
// "c":{"id":…,"wrap":…,"name":…}}, written out by hand.
func legacyRegistration(e *record.Event) []byte {
	str := func(b []byte, s string) []byte { return append(append(b, 0xa0|byte(len(s))), s...) }
	bin := func(b, v []byte) []byte { return append(append(b, 0xc4, byte(len(v))), v...) }
	b := []byte{0x87}
	b = append(str(b, "v"), 0x01)
	b = str(str(b, "t"), e.Type.String())
	b = append(append(str(b, "a"), 0xd9, byte(len(e.Aggregate()))), e.Aggregate()...)
	b = append(str(b, "n"), 0x01)
	b = binary.BigEndian.AppendUint64(append(str(b, "ts"), 0xd3), uint64(e.Time))
	b = bin(str(b, "by"), e.Actor[:])
	b = append(str(b, "c"), 0x83)
	b = bin(str(b, "id"), e.Client.ID[:])
	b = bin(str(b, "wrap"), e.Client.Wrap[:])
	return str(str(b, "name"), e.Client.Name)
}

func withUint32(b []byte, off int, v uint32) []byte {
	c := bytes.Clone(b)
	binary.BigEndian.PutUint32(c[off:], v)
	return c
}

func withUint64(b []byte, off int, v uint64) []byte {
	c := bytes.Clone(b)
	binary.BigEndian.PutUint64(c[off:], v)
	return c
}

// checkpoints: the log hash of the generated log and checkpoints over it.
func (g *gen) checkpoints(l *eventLog) {
	var log [32]byte
	for _, s := range l.out {
		h := s.rec.Hash()
		log = record.ChainLog(&log, s.streamSeq, &h)
	}
	last := l.out[len(l.out)-1].streamSeq
	cp := record.SignCheckpoint(record.Checkpoint{Seq: last, Log: log}, l.ks)
	other := g.b32()
	emit := func(name, comment, expect string, wire []byte) {
		v := g.emit("checkpoint-"+name, comment, "checkpoint", expect)
		pub := l.ks.Public()
		v.add("keyserver_public", pub[:])
		for _, s := range l.out {
			h := s.rec.Hash()
			v.add("stream_seq", s.streamSeq)
			v.add("record_hash", h[:])
		}
		v.add("log", log[:])
		v.add("checkpoint", wire)
	}
	emit("ok", "A checkpoint at the end of the event log of the event-ok cases (stream sequences 1 to 8); log is its log hash.", "ok", cp)
	emit("other-signer", "The same checkpoint signed by another key.", "bad_checkpoint_signature",
		record.SignCheckpoint(record.Checkpoint{Seq: last, Log: log}, keys.NewSigningKey(&other)))
	emit("flipped-log", "The ok checkpoint with a bit of its log hash flipped.", "bad_checkpoint_signature", flip(cp, 9))
	emit("flipped-seq", "The ok checkpoint with a bit of its sequence flipped.", "bad_checkpoint_signature", flip(cp, 8))
	emit("truncated", "The ok checkpoint without its last byte.", "checkpoint_malformed", cp[:len(cp)-1])
	emit("version", "The ok checkpoint with the next protocol version.", "checkpoint_malformed", withByte(cp, 0, protocol.Version+1))
}
