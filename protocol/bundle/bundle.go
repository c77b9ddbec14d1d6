// Package bundle carries a group key from the keyserver to one member: the
// key wrapped with HPKE to the member's key-wrap key, and the keyserver's
// signature over everything the member needs to trust it.
//
// Layout (integers big-endian), 229 bytes:
//
//	version   1  1
//	group    16  protocol.GroupID
//	epoch     4  protocol.Epoch
//	member   32  the recipient's ClientID
//	members  32  MemberDigest of the epoch's member list
//	enc      32  HPKE encapsulated key
//	wrapped  48  HPKE ciphertext of the 32-byte group key
//	sig      64  Ed25519(Sk_Ks, LabelBundleSig | version..wrapped)
//
// HPKE (RFC 9180) runs in base mode with DHKEM(X25519, HKDF-SHA256),
// HKDF-SHA256 and ChaCha20Poly1305, info = LabelBundleWrap | version |
// group | epoch | member, and no associated data.
package bundle

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
)

// Sizes.
const (
	Version     = protocol.Version
	EncSize     = 32
	WrappedSize = protocol.GroupKeySize + 16
	signedSize  = 1 + protocol.GroupIDSize + 4 + protocol.PublicKeySize + protocol.HashSize + EncSize + WrappedSize
	Size        = signedSize + protocol.SignatureSize
)

// Bundle is one member's signed, wrapped group key for one epoch.
type Bundle struct {
	Group   protocol.GroupID
	Epoch   protocol.Epoch
	Member  protocol.ClientID
	Members [protocol.HashSize]byte
	Enc     [EncSize]byte
	Wrapped [WrappedSize]byte
	Sig     [protocol.SignatureSize]byte
}

func (b *Bundle) appendSigned(dst []byte) []byte {
	dst = append(dst, Version)
	dst = append(dst, b.Group[:]...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(b.Epoch))
	dst = append(dst, b.Member[:]...)
	dst = append(dst, b.Members[:]...)
	dst = append(dst, b.Enc[:]...)
	return append(dst, b.Wrapped[:]...)
}

// Append appends the wire form to dst.
func (b *Bundle) Append(dst []byte) []byte {
	return append(b.appendSigned(dst), b.Sig[:]...)
}

// Marshal returns the wire form.
func (b *Bundle) Marshal() []byte { return b.Append(make([]byte, 0, Size)) }

// Parse decodes a bundle; it checks the length and version only.
func Parse(data []byte) (*Bundle, error) {
	if len(data) != Size {
		return nil, protocol.ErrBundleLength
	}
	if data[0] != Version {
		return nil, protocol.ErrBundleVersion
	}
	b := new(Bundle)
	r := data[1:]
	r = r[copy(b.Group[:], r):]
	b.Epoch = protocol.Epoch(binary.BigEndian.Uint32(r))
	r = r[4:]
	r = r[copy(b.Member[:], r):]
	r = r[copy(b.Members[:], r):]
	r = r[copy(b.Enc[:], r):]
	r = r[copy(b.Wrapped[:], r):]
	copy(b.Sig[:], r)
	if b.Epoch == 0 || b.Epoch == math.MaxUint32 {
		return nil, protocol.ErrBadEpoch
	}
	return b, nil
}

func signedInput(b *Bundle) []byte {
	in := make([]byte, 0, len(protocol.LabelBundleSig)+signedSize)
	return b.appendSigned(append(in, protocol.LabelBundleSig...))
}

func wrapInfo(g protocol.GroupID, e protocol.Epoch, member protocol.ClientID) []byte {
	info := make([]byte, 0, len(protocol.LabelBundleWrap)+1+protocol.GroupIDSize+4+protocol.PublicKeySize)
	info = append(info, protocol.LabelBundleWrap...)
	info = append(info, Version)
	info = append(info, g[:]...)
	info = binary.BigEndian.AppendUint32(info, uint32(e))
	return append(info, member[:]...)
}

var (
	kem  = hpke.DHKEM(ecdh.X25519())
	kdf  = hpke.HKDFSHA256()
	aead = hpke.ChaCha20Poly1305()
)

// Recipient is a member to wrap a key to.
type Recipient struct {
	ID   protocol.ClientID
	Wrap [protocol.PublicKeySize]byte // the member's key-wrap public key
}

// Wrap wraps groupKey to r for (group, epoch) and signs the bundle with the
// keyserver's key. members is MemberDigest of the epoch's member list.
func Wrap(signer *keys.SigningKey, group protocol.GroupID, epoch protocol.Epoch, r Recipient,
	members *[protocol.HashSize]byte, groupKey *[protocol.GroupKeySize]byte) (*Bundle, error) {
	pub, err := kem.NewPublicKey(r.Wrap[:])
	if err != nil {
		return nil, fmt.Errorf("bundle: member %s key-wrap key: %w", r.ID.Short(), err)
	}
	ct, err := hpke.Seal(pub, kdf, aead, wrapInfo(group, epoch, r.ID), groupKey[:])
	if err != nil {
		return nil, fmt.Errorf("bundle: wrap to %s: %w", r.ID.Short(), err)
	}
	b := &Bundle{Group: group, Epoch: epoch, Member: r.ID, Members: *members}
	copy(b.Enc[:], ct)
	copy(b.Wrapped[:], ct[EncSize:])
	b.Sig = signer.Sign(signedInput(b))
	return b, nil
}

// Verify checks the keyserver's signature.
func (b *Bundle) Verify(keyserver *[protocol.PublicKeySize]byte) error {
	if !keys.Verify(keyserver, signedInput(b), &b.Sig) {
		return protocol.ErrBadBundleSignature
	}
	return nil
}

// Open verifies the bundle, checks that it is addressed to self, and only
// then unwraps the group key.
func (b *Bundle) Open(keyserver *[protocol.PublicKeySize]byte, self *keys.ClientIdentity) ([protocol.GroupKeySize]byte, error) {
	var key [protocol.GroupKeySize]byte
	if err := b.Verify(keyserver); err != nil {
		return key, err
	}
	if id := self.ID(); !bytes.Equal(b.Member[:], id[:]) {
		return key, protocol.ErrWrongMember
	}
	ct := append(b.Enc[:], b.Wrapped[:]...)
	pt, err := hpke.Open(self.Wrap.HPKE(), kdf, aead, wrapInfo(b.Group, b.Epoch, b.Member), ct)
	if err != nil || len(pt) != protocol.GroupKeySize {
		return key, protocol.ErrUnwrap
	}
	copy(key[:], pt)
	clear(pt)
	return key, nil
}

// MemberDigest is SHA-256(LabelMemberDigest | count(4) | ids in ascending
// byte order): it commits a bundle to the exact member list of its epoch.
func MemberDigest(ids []protocol.ClientID) [protocol.HashSize]byte {
	sorted := slices.Clone(ids)
	slices.SortFunc(sorted, func(a, b protocol.ClientID) int { return bytes.Compare(a[:], b[:]) })
	h := sha256.New()
	h.Write([]byte(protocol.LabelMemberDigest))
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(sorted))))
	for _, id := range sorted {
		h.Write(id[:])
	}
	var d [protocol.HashSize]byte
	h.Sum(d[:0])
	return d
}
