package record

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
)

// The log hash commits, in stream order, to every record a replay applied
// (PROTOCOL.md §15.6):
//
//	log_0 = 32 zero bytes
//	log_i = SHA-256(log_(i-1) | seq_i (8, big-endian) | SHA-256(record_i))
//
// A checkpoint is the keyserver's signature over a stream sequence and the
// log hash there:
//
//	checkpoint = version (1) | seq (8) | log (32) | signature (64)
//	signature  = Ed25519(Sk_Ks, LabelCheckpoint | version | seq | log)

// CheckpointSize is the size of a checkpoint.
const CheckpointSize = 1 + 8 + protocol.HashSize + protocol.SignatureSize

// Errors of reading checkpoints.
var (
	ErrCheckpointMalformed    = protocol.ErrCheckpointMalformed
	ErrBadCheckpointSignature = protocol.ErrBadCheckpointSignature
)

// Checkpoint says that the records applied up to stream sequence Seq
// have the log hash Log.
type Checkpoint struct {
	Seq uint64
	Log [protocol.HashSize]byte
}

// ChainLog extends the log hash by the record at stream sequence seq whose
// hash is record.
func ChainLog(log *[protocol.HashSize]byte, seq uint64, record *[protocol.HashSize]byte) [protocol.HashSize]byte {
	var in [protocol.HashSize + 8 + protocol.HashSize]byte
	copy(in[:32], log[:])
	binary.BigEndian.PutUint64(in[32:40], seq)
	copy(in[40:], record[:])
	return sha256.Sum256(in[:])
}

func (c *Checkpoint) appendBody(dst []byte) []byte {
	dst = append(dst, Version)
	dst = binary.BigEndian.AppendUint64(dst, c.Seq)
	return append(dst, c.Log[:]...)
}

func (c *Checkpoint) signedInput() []byte {
	return c.appendBody([]byte(protocol.LabelCheckpoint))
}

// SignCheckpoint returns the wire form of c signed with the keyserver's key.
func SignCheckpoint(c Checkpoint, ks *keys.SigningKey) []byte {
	sig := ks.Sign(c.signedInput())
	return append(c.appendBody(make([]byte, 0, CheckpointSize)), sig[:]...)
}

// ParseCheckpoint decodes a checkpoint and verifies its signature.
func ParseCheckpoint(wire []byte, ks *[protocol.PublicKeySize]byte) (Checkpoint, error) {
	if len(wire) != CheckpointSize {
		return Checkpoint{}, fmt.Errorf("%w: %d bytes", ErrCheckpointMalformed, len(wire))
	}
	if wire[0] != Version {
		return Checkpoint{}, fmt.Errorf("%w: version %d", ErrCheckpointMalformed, wire[0])
	}
	c := Checkpoint{Seq: binary.BigEndian.Uint64(wire[1:9]), Log: [32]byte(wire[9:41])}
	sig := [protocol.SignatureSize]byte(wire[41:])
	if !keys.Verify(ks, c.signedInput(), &sig) {
		return Checkpoint{}, ErrBadCheckpointSignature
	}
	return c, nil
}
