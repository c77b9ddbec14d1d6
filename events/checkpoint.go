package events

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

// A checkpoint lets a cold start skip the signatures of the history it
// covers. Without one, Load checks the signature of every aggregate's last
// event; with a million clients that is a million Ed25519 verifications,
// most of the time of a start.
//
// The log hash of a projection commits, in stream order, to every record
// it applied:
//
//	log_0 = 32 zero bytes
//	log_i = SHA-256(log_(i-1) | seq_i (8 bytes, big-endian) | SHA-256(record_i))
//
// A checkpoint is the keyserver's signature over a stream sequence and the
// log hash of its projection there, made only while every record the
// projection applied has had its signature checked:
//
//	checkpoint = version (1) = 1 | seq (8, big-endian) | log (32) | signature (64)
//	signature  = Ed25519(Sk_Ks, LabelCheckpoint | version | seq | log)
//
// Load replays with the signatures deferred and computes the same log hash.
// If it equals the checkpoint's at the checkpoint's sequence, the records
// applied up to there are exactly those the keyserver had verified, so
// only the heads appended after it need their signatures checked. If it
// differs (a forged, lost or reordered record), Load replays again
// checking every signature. A checkpoint that does not verify is ignored;
// deleting checkpoints only makes starts slower.
//
// Checkpoints live in their own stream, which keeps the last few.

// The checkpoint wire format (the stream is streams.Checkpoints).
const (
	checkpointVersion  byte = 1
	CheckpointSize          = 1 + 8 + 32 + protocol.SignatureSize
	checkpointsKept         = 4
	checkpointInterval      = 10_000           // events between the checkpoints a Writer makes
	checkpointTimeout       = 10 * time.Second // for storing one
)

// ErrBadCheckpoint means a checkpoint is malformed or not the keyserver's.
var ErrBadCheckpoint = errors.New("events: checkpoint malformed or not signed by the keyserver")

// Checkpoint says that the records a projection applied up to stream
// sequence Seq have the log hash Log.
type Checkpoint struct {
	Seq uint64
	Log [32]byte
}

func (c *Checkpoint) appendBody(dst []byte) []byte {
	dst = append(dst, checkpointVersion)
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
	if len(wire) != CheckpointSize || wire[0] != checkpointVersion {
		return Checkpoint{}, ErrBadCheckpoint
	}
	c := Checkpoint{Seq: binary.BigEndian.Uint64(wire[1:9]), Log: [32]byte(wire[9:41])}
	sig := [protocol.SignatureSize]byte(wire[41:])
	if !keys.Verify(ks, c.signedInput(), &sig) {
		return Checkpoint{}, ErrBadCheckpoint
	}
	return c, nil
}

// CheckpointConfig is the checkpoint stream's configuration.
func CheckpointConfig(c StoreConfig) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              streams.Checkpoints,
		Description:       "Communicator keyserver event log checkpoints: signed log hashes that spare a cold start most signature checks",
		Subjects:          []string{streams.CheckpointSubject},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: checkpointsKept,
		MaxMsgSize:        1 << 10, // a checkpoint is CheckpointSize bytes
		Replicas:          max(c.Replicas, 1),
		AllowDirect:       true,
	}
}

// checkpointLookup bounds the look-up of the checkpoint stream by a store
// that did not create it: a reader whose credentials do not cover it
// would otherwise wait for its request's whole timeout.
const checkpointLookup = 2 * time.Second

// lastCheckpoint returns the newest checkpoint, or nil if there is none
// (or no checkpoint stream this store can read).
func (s *Store) lastCheckpoint(ctx context.Context, ks *[protocol.PublicKeySize]byte) (*Checkpoint, error) {
	st := s.checkpoints
	if st == nil {
		lctx, cancel := context.WithTimeout(ctx, checkpointLookup)
		defer cancel()
		var err error
		if st, err = s.js.Stream(lctx, streams.Checkpoints); err != nil {
			return nil, nil // Load checks every head, as without checkpoints
		}
	}
	m, err := st.GetLastMsgForSubject(ctx, streams.CheckpointSubject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("events: reading the last checkpoint: %w", err)
	}
	c, err := ParseCheckpoint(m.Data, ks)
	if err != nil {
		return nil, fmt.Errorf("%w (checkpoint stream sequence %d)", err, m.Sequence)
	}
	return &c, nil
}

func (s *Store) saveCheckpoint(ctx context.Context, wire []byte) error {
	if s.checkpoints == nil {
		return errors.New("events: no checkpoint stream")
	}
	if _, err := s.js.Publish(ctx, streams.CheckpointSubject, wire); err != nil {
		return fmt.Errorf("events: storing a checkpoint: %w", err)
	}
	return nil
}

// checkpoint returns the projection's checkpoint, if every record it
// applied has had its signature checked.
func (p *Projection) checkpoint() (Checkpoint, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return Checkpoint{Seq: p.lastSeq, Log: p.logHash}, !p.deferred && p.lastSeq > 0
}

// sinceCheckpoint is how many stream sequences the projection has seen
// since the newest checkpoint it knows of.
func (p *Projection) sinceCheckpoint() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.lastSeq - min(p.checkpointed, p.lastSeq)
}

func (p *Projection) setCheckpointed(seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checkpointed = max(p.checkpointed, seq)
}

// LogHash returns the log hash of the records applied so far and the
// stream sequence of the last record seen.
func (p *Projection) LogHash() ([32]byte, uint64) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.logHash, p.lastSeq
}
