package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/streams"
)

// A checkpoint (record.Checkpoint, PROTOCOL.md §15.6) lets a cold start
// skip the signatures of the history it covers. Without one, Load checks
// the signature of every aggregate's last event; with a million clients
// that is a million Ed25519 verifications, most of the time of a start.
// A checkpoint is made only while every record the projection applied has
// had its signature checked.
//
// Load replays with the signatures deferred and computes the same log
// hash. If it equals the checkpoint's at the checkpoint's sequence, the
// records applied up to there are exactly those the keyserver had
// verified, so only the heads appended after it need their signatures
// checked. If it differs (a forged, lost or reordered record), Load
// replays again checking every signature. A checkpoint that does not
// verify is ignored; deleting checkpoints only makes starts slower.
//
// Checkpoints live in their own stream, which keeps the last few.

const (
	checkpointsKept    = 4
	checkpointInterval = 10_000           // events between the checkpoints a Writer makes
	checkpointTimeout  = 10 * time.Second // for storing one
)

// CheckpointConfig is the checkpoint stream's configuration.
func CheckpointConfig(c StoreConfig) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              streams.Checkpoints,
		Description:       "Communicator keyserver event log checkpoints: signed log hashes that spare a cold start most signature checks",
		Subjects:          []string{streams.CheckpointSubject},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: checkpointsKept,
		MaxMsgSize:        1 << 10, // a checkpoint is record.CheckpointSize bytes
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
func (s *Store) lastCheckpoint(ctx context.Context, ks *[protocol.PublicKeySize]byte) (*record.Checkpoint, error) {
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
	c, err := record.ParseCheckpoint(m.Data, ks)
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

// checkpoint returns the projection's checkpoint. Every record it applied
// has had its signature checked (a Loader hands over only then).
func (p *Projection) checkpoint() (record.Checkpoint, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return record.Checkpoint{Seq: p.l.lastSeq, Log: p.l.logHash}, p.l.lastSeq > 0
}

// sinceCheckpoint is how many stream sequences the projection has seen
// since the newest checkpoint it knows of.
func (p *Projection) sinceCheckpoint() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.l.lastSeq - min(p.checkpointed, p.l.lastSeq)
}

func (p *Projection) setCheckpointed(seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checkpointed = max(p.checkpointed, seq)
}
