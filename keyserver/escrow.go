package keyserver

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/keys"
)

// The escrow of an epoch's group key, so that a keyserver that crashed
// while publishing an epoch's bundles can finish them with the same key
// instead of opening another epoch.
//
// Before it publishes an epoch's bundles (after the epoch's event is in
// the log), the keyserver stores the epoch's key in its private bucket
// (streams.KeyserverKV; no other role may read it, see natsauth.Stores)
// under escrow.<group>, as a bundle addressed to itself: member = the
// keyserver's public key Pk_Ks, wrapped with HPKE to its escrow key-wrap
// key, signed with Sk_Ks, bound to the group, the epoch and the epoch's
// member digest like any bundle (protocol/bundle). The escrow key-wrap key
// is derived from Sk_Ks and never stored:
//
//	scalar = HKDF-SHA256(secret = Ed25519 seed of Sk_Ks, salt = none,
//	                     info = protocol.LabelEscrowKey, length 32)
//
// used as an X25519 private key. Once every member's bundle is published
// and the epoch recorded complete, the escrow is purged (if no later
// epoch's escrow replaced it). Reading an escrow takes both the bucket and
// Sk_Ks; Sk_Ks alone opens no member's bundle.

// errNoEscrow: the epoch's key was not escrowed, or its escrow is gone.
var errNoEscrow = errors.New("keyserver: no escrow of the epoch's key")

// deriveEscrowKey derives the escrow key-wrap key from sk; the caller
// wipes it.
func deriveEscrowKey(sk *keys.SigningKey) (*keys.WrapKey, error) {
	seed := sk.Seed()
	defer clear(seed[:])
	out, err := hkdf.Key(sha256.New, seed[:], nil, protocol.LabelEscrowKey, 32)
	if err != nil {
		return nil, fmt.Errorf("keyserver: escrow key: %w", err)
	}
	defer clear(out)
	scalar := [32]byte(out)
	defer clear(scalar[:])
	return keys.NewWrapKey(&scalar)
}

// escrowPublic is the public half of sk's escrow key-wrap key.
func escrowPublic(sk *keys.SigningKey) ([32]byte, error) {
	wk, err := deriveEscrowKey(sk)
	if err != nil {
		return [32]byte{}, err
	}
	defer wk.Wipe()
	return wk.Public(), nil
}

func escrowKey(g protocol.GroupID) string { return "escrow." + g.String() }

// storeEscrow escrows key of g's epoch e, whose members have digest, and
// returns the escrow's revision.
func (k *Keyserver) storeEscrow(ctx context.Context, g protocol.GroupID, e protocol.Epoch,
	digest *[protocol.HashSize]byte, key *[protocol.GroupKeySize]byte) (uint64, error) {
	self := bundle.Recipient{ID: protocol.ClientID(k.cfg.Key.Public()), Wrap: k.escrow}
	b, err := bundle.Wrap(k.cfg.Key, g, e, self, digest, key)
	if err != nil {
		return 0, fmt.Errorf("keyserver: escrow of %s epoch %d: %w", g, e, err)
	}
	rev, err := k.kv.Put(ctx, escrowKey(g), b.Marshal())
	if err != nil {
		return 0, fmt.Errorf("keyserver: escrow of %s epoch %d: %w", g, e, err)
	}
	return rev, nil
}

// openEscrow returns the key of g's epoch e from its escrow, which must
// be the keyserver's, for that epoch and its member digest, and the
// escrow's revision.
func (k *Keyserver) openEscrow(ctx context.Context, g protocol.GroupID, e protocol.Epoch,
	digest *[protocol.HashSize]byte) (key [protocol.GroupKeySize]byte, rev uint64, err error) {
	entry, err := k.kv.Get(ctx, escrowKey(g))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return key, 0, errNoEscrow
	}
	if err != nil {
		return key, 0, fmt.Errorf("keyserver: reading the escrow: %w", err)
	}
	b, err := bundle.Parse(entry.Value())
	switch {
	case err != nil:
		return key, 0, fmt.Errorf("keyserver: escrow unreadable: %w", err)
	case b.Group != g || b.Epoch != e:
		return key, 0, fmt.Errorf("%w: the escrow is of epoch %d", errNoEscrow, b.Epoch)
	case b.Members != *digest:
		return key, 0, errors.New("keyserver: the escrow is of another member list than the epoch's")
	}
	wk, err := deriveEscrowKey(k.cfg.Key)
	if err != nil {
		return key, 0, err
	}
	defer wk.Wipe()
	pub := k.cfg.Key.Public()
	if key, err = b.Open(&pub, &keys.ClientIdentity{Sig: k.cfg.Key, Wrap: wk}); err != nil {
		return key, 0, fmt.Errorf("keyserver: escrow does not open: %w", err)
	}
	return key, entry.Revision(), nil
}

// dropEscrow purges g's escrow if it is still the one at revision rev
// (not a later epoch's).
func (k *Keyserver) dropEscrow(ctx context.Context, g protocol.GroupID, rev uint64) {
	err := k.kv.Purge(ctx, escrowKey(g), jetstream.LastRevision(rev))
	if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		k.log.Warn().Err(err).Str("group", g.String()).Msg("escrow of a complete epoch not purged")
	}
}
