// Package record is the keyserver's event record: the types of the
// changes, their one canonical binary encoding, the keyserver's signature
// over it, the hash that chains each record to the previous one of its
// aggregate, and the signed checkpoints of the log. docs/PROTOCOL.md §15
// specifies every byte; the test vectors in protocol/testdata/vectors
// (kinds "event" and "checkpoint") hold this package to it.
//
//	record    = body | signature (64)
//	body      = version (1) | type (1) | seq (8) | prev (32) | time (8)
//	            | actor (32) | request (16) | payload (by type)
//	signature = Ed25519(Sk_Ks, LabelEvent | body)
//	hash      = SHA-256(record), named by the next record's prev
//
// Decode accepts exactly what Encode writes: decode(encode(e)) == e, and
// encode(decode(b)) == b for every b it accepts. Every length is checked
// against the bytes left before anything is allocated.
//
// The record knows nothing of NATS (package events stores and replays
// records) nor of the state they fold into (package fold).
package record
