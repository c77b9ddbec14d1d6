package keyserver

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/internal/msgpacksafe"
	"github.com/commsec/communicator/keyserver/admin"
	"github.com/commsec/communicator/protocol"
)

// MinAtomicBatch is minAtomicBatch, for the tests of package keyserver_test.
const MinAtomicBatch = minAtomicBatch

// RecordTaken records the signed request wire as taken, as the admin
// handler does before it runs a request: what a keyserver that stopped
// while running it leaves.
func RecordTaken(ctx context.Context, js jetstream.JetStream, wire []byte) error {
	var r admin.Request
	if err := msgpacksafe.Unmarshal(wire[:len(wire)-protocol.SignatureSize], &r); err != nil {
		return fmt.Errorf("RecordTaken: %w", err)
	}
	_, err := (&requests{js: js}).take(ctx, &r, sha256.Sum256(wire))
	return err
}

// EscrowKey is the bookkeeping bucket's key of g's escrow.
func EscrowKey(g protocol.GroupID) string { return escrowKey(g) }

// CompleteEpoch records epoch e of g complete, as k does once its bundles
// are published.
func CompleteEpoch(ctx context.Context, k *Keyserver, g protocol.GroupID, e protocol.Epoch) error {
	return k.completeEpoch(ctx, g, e)
}

// EpochKey is the bookkeeping bucket's key of g's completed epoch.
func EpochKey(g protocol.GroupID) string { return epochKey(g) }
