package protocol

import (
	"encoding/hex"
	"fmt"
)

// ClientID is a client's address: its Ed25519 signature public key.
type ClientID [PublicKeySize]byte

// GroupID names a group; the keyserver chooses it at random.
type GroupID [GroupIDSize]byte

// Epoch numbers the key periods of a group, starting at 1.
type Epoch uint32

// String returns the lowercase hex form used in logs, subjects and files.
func (id ClientID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 8 hex digits, for humans reading logs.
func (id ClientID) Short() string { return hex.EncodeToString(id[:4]) }

// String returns the lowercase hex form used in logs, subjects and files.
func (g GroupID) String() string { return hex.EncodeToString(g[:]) }

// ParseClientID reads the 64-digit hex form of a ClientID.
func ParseClientID(s string) (ClientID, error) {
	var id ClientID
	if err := decodeHex(id[:], s); err != nil {
		return ClientID{}, fmt.Errorf("protocol: client id: %w", err)
	}
	return id, nil
}

// ParseGroupID reads the 32-digit hex form of a GroupID.
func ParseGroupID(s string) (GroupID, error) {
	var g GroupID
	if err := decodeHex(g[:], s); err != nil {
		return GroupID{}, fmt.Errorf("protocol: group id: %w", err)
	}
	return g, nil
}

func decodeHex(dst []byte, s string) error {
	if len(s) != 2*len(dst) {
		return fmt.Errorf("want %d hex digits, got %d", 2*len(dst), len(s))
	}
	if _, err := hex.Decode(dst, []byte(s)); err != nil {
		return err
	}
	return nil
}
