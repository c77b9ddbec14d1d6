// Package events is the keyserver's event log: the signed, hash-chained
// changes from which every service derives who is registered and who is in
// which group, and that an audit replays.
//
// An event belongs to one aggregate: a client ("client.<id hex>") or a
// group ("group.<id hex>"), stored on the JetStream subject
// "comm.events.<aggregate>". Within its aggregate an event carries its
// position (Seq, from 1) and the hash of the previous event (Prev), and the
// keyserver signs it. On the wire a record is
//
//	record = data | signature(64)
//	data   = msgpack(Event)
//	signature = Ed25519(Sk_Ks, protocol.LabelEvent | data)
//	hash(record) = SHA-256(record), the next event's Prev
//
// Appends use optimistic concurrency (the expected last sequence of the
// aggregate's subject), so two keyserver instances can never fork an
// aggregate's history: one of them gets ErrConflict, reloads and retries.
//
// Projection is the one fold every service uses: it verifies the subject,
// the chain and the signature of each event and checks that the change is
// valid in the current State before it applies it. A cold start (Load)
// checks signatures only at the aggregates' heads, and with a checkpoint
// (the keyserver's signature over the hash of the log up to a point, in
// its own stream; see Checkpoint) only at the heads after it.
package events
