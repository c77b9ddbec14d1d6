package record

import (
	"crypto/sha256"
	"fmt"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
)

// Record is a signed, encoded event as stored in the log: body | signature.
type Record []byte

// Sign encodes e and signs it with the keyserver's key.
func Sign(e *Event, ks *keys.SigningKey) (Record, error) {
	body, err := Encode(e)
	if err != nil {
		return nil, err
	}
	sig := ks.Sign(signedInput(body))
	return append(body, sig[:]...), nil
}

// signedInput is LabelEvent | body.
func signedInput(body []byte) []byte {
	in := make([]byte, 0, len(protocol.LabelEvent)+len(body))
	return append(append(in, protocol.LabelEvent...), body...)
}

// Hash is the record's hash: the next event of its aggregate names it in
// Prev.
func (r Record) Hash() [protocol.HashSize]byte { return sha256.Sum256(r) }

// Verify checks the signature against the keyserver's public key. It does
// not decode the body.
func (r Record) Verify(ks *[protocol.PublicKeySize]byte) error {
	if len(r) < MinSize || len(r) > MaxSize {
		return fmt.Errorf("%w: %d bytes", ErrMalformed, len(r))
	}
	n := len(r) - protocol.SignatureSize
	sig := [protocol.SignatureSize]byte(r[n:])
	if !keys.Verify(ks, signedInput(r[:n]), &sig) {
		return ErrBadSignature
	}
	return nil
}

// Follows checks that e is the next link of an aggregate's chain whose
// last record is the seq-th and has hash last: e is at position seq+1 and
// names last (32 zero bytes, the genesis value, when seq is 0).
func (e *Event) Follows(seq uint64, last [protocol.HashSize]byte) error {
	if e.Seq != seq+1 {
		return fmt.Errorf("%w: %s event %d follows event %d", ErrChainBroken, e.Aggregate(), e.Seq, seq)
	}
	if e.Prev != last {
		return fmt.Errorf("%w: %s event %d does not name the hash of event %d", ErrChainBroken, e.Aggregate(), e.Seq, seq)
	}
	return nil
}
