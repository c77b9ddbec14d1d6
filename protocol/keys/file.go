package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"

	"github.com/commsec/communicator/internal/atomicfile"
	"github.com/commsec/communicator/protocol"
)

// Key file layout (docs/PROTOCOL.md, "Key files"):
//
//	magic    4  "CMKY"
//	version  1  1
//	kind     1  see Kind
//	body     n  fixed by kind
//	check    4  SHA-256(magic..body)[:4]
//
// The checksum catches corruption and truncation, not tampering: a key file
// is as trusted as the disk it is on.

const (
	fileMagic   = "CMKY"
	fileVersion = protocol.Version
	fileHeader  = 6
	fileCheck   = 4
)

// Kind says what a key file holds.
type Kind byte

// The kinds of key file.
const (
	KindClientPrivate    Kind = 1 // Ed25519 seed (32) | X25519 scalar (32)
	KindClientPublic     Kind = 2 // Ed25519 public (32) | X25519 public (32)
	KindServerPrivate    Kind = 3 // gateway Sk_S: Ed25519 seed (32)
	KindServerPublic     Kind = 4 // Pk_S (32)
	KindKeyserverPrivate Kind = 5 // Sk_Ks: Ed25519 seed (32)
	KindKeyserverPublic  Kind = 6 // Pk_Ks (32)
	KindOperatorPrivate  Kind = 7 // an operator's admin key: Ed25519 seed (32)
	KindOperatorPublic   Kind = 8 // its public key (32)
)

var kindInfo = map[Kind]struct {
	name    string
	size    int
	private bool
}{
	KindClientPrivate:    {"client identity (private)", 64, true},
	KindClientPublic:     {"client public key", 64, false},
	KindServerPrivate:    {"server key (private)", 32, true},
	KindServerPublic:     {"server public key", 32, false},
	KindKeyserverPrivate: {"keyserver key (private)", 32, true},
	KindKeyserverPublic:  {"keyserver public key", 32, false},
	KindOperatorPrivate:  {"operator key (private)", 32, true},
	KindOperatorPublic:   {"operator public key", 32, false},
}

func (k Kind) String() string {
	if i, ok := kindInfo[k]; ok {
		return i.name
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// Private reports whether files of this kind hold a secret.
func (k Kind) Private() bool { return kindInfo[k].private }

// KindError says which kind a file holds and which was wanted.
type KindError struct{ Want, Got Kind }

func (e *KindError) Error() string {
	return fmt.Sprintf("%v: want a %v, this file holds a %v", protocol.ErrKeyFileKind, e.Want, e.Got)
}

func (e *KindError) Unwrap() error { return protocol.ErrKeyFileKind }

// Encode returns the file bytes holding body as a key of kind k.
func Encode(k Kind, body []byte) []byte {
	b := make([]byte, 0, fileHeader+len(body)+fileCheck)
	b = append(b, fileMagic...)
	b = append(b, fileVersion, byte(k))
	b = append(b, body...)
	sum := sha256.Sum256(b)
	return append(b, sum[:fileCheck]...)
}

// Decode checks data and returns its kind and a copy of its body.
// It returns nothing half-built: on error the body is nil.
func Decode(data []byte) (Kind, []byte, error) {
	if len(data) < len(fileMagic) || !bytes.Equal(data[:len(fileMagic)], []byte(fileMagic)) {
		return 0, nil, protocol.ErrKeyFileForeign
	}
	if len(data) < fileHeader {
		return 0, nil, protocol.ErrKeyFileTruncated
	}
	if data[4] != fileVersion {
		return 0, nil, protocol.ErrKeyFileVersion
	}
	kind := Kind(data[5])
	info, ok := kindInfo[kind]
	if !ok {
		return 0, nil, fmt.Errorf("%w: unknown kind %d", protocol.ErrKeyFileKind, data[5])
	}
	if len(data) != fileHeader+info.size+fileCheck {
		return 0, nil, protocol.ErrKeyFileTruncated
	}
	n := fileHeader + info.size
	sum := sha256.Sum256(data[:n])
	if !bytes.Equal(sum[:fileCheck], data[n:]) {
		return 0, nil, protocol.ErrKeyFileChecksum
	}
	return kind, bytes.Clone(data[fileHeader:n]), nil
}

// DecodeKind is Decode that also insists on the kind.
func DecodeKind(data []byte, want Kind) ([]byte, error) {
	kind, body, err := Decode(data)
	if err != nil {
		return nil, err
	}
	if kind != want {
		clear(body)
		return nil, &KindError{Want: want, Got: kind}
	}
	return body, nil
}

// EncodeClientIdentity returns the private file bytes of c.
func EncodeClientIdentity(c *ClientIdentity) []byte {
	seed, scalar := c.Sig.Seed(), c.Wrap.scalar()
	defer clear(seed[:])
	defer clear(scalar[:])
	body := append(seed[:], scalar[:]...)
	defer clear(body)
	return Encode(KindClientPrivate, body)
}

// DecodeClientIdentity parses a client identity file.
func DecodeClientIdentity(data []byte) (*ClientIdentity, error) {
	body, err := DecodeKind(data, KindClientPrivate)
	if err != nil {
		return nil, err
	}
	defer clear(body)
	var seed, scalar [32]byte
	defer clear(seed[:])
	defer clear(scalar[:])
	copy(seed[:], body[:32])
	copy(scalar[:], body[32:])
	wrap, err := NewWrapKey(&scalar)
	if err != nil {
		return nil, err
	}
	return &ClientIdentity{Sig: NewSigningKey(&seed), Wrap: wrap}, nil
}

// EncodeClientPublic returns the public file bytes of p.
func EncodeClientPublic(p ClientPublic) []byte {
	return Encode(KindClientPublic, append(p.ID[:], p.Wrap[:]...))
}

// DecodeClientPublic parses a client public key file.
func DecodeClientPublic(data []byte) (ClientPublic, error) {
	body, err := DecodeKind(data, KindClientPublic)
	if err != nil {
		return ClientPublic{}, err
	}
	var p ClientPublic
	copy(p.ID[:], body[:32])
	copy(p.Wrap[:], body[32:])
	return p, nil
}

// EncodeSigningKey returns the file bytes of k as a private key of kind.
func EncodeSigningKey(kind Kind, k *SigningKey) []byte {
	seed := k.Seed()
	defer clear(seed[:])
	return Encode(kind, seed[:])
}

// DecodeSigningKey parses a private signature key file of the given kind.
func DecodeSigningKey(data []byte, kind Kind) (*SigningKey, error) {
	body, err := DecodeKind(data, kind)
	if err != nil {
		return nil, err
	}
	defer clear(body)
	var seed [ed25519.SeedSize]byte
	defer clear(seed[:])
	copy(seed[:], body)
	return NewSigningKey(&seed), nil
}

// EncodePublicKey returns the file bytes of a 32-byte public key of kind.
func EncodePublicKey(kind Kind, pub [protocol.PublicKeySize]byte) []byte {
	return Encode(kind, pub[:])
}

// DecodePublicKey parses a 32-byte public key file of the given kind.
func DecodePublicKey(data []byte, kind Kind) ([protocol.PublicKeySize]byte, error) {
	var pub [protocol.PublicKeySize]byte
	body, err := DecodeKind(data, kind)
	if err != nil {
		return pub, err
	}
	copy(pub[:], body)
	return pub, nil
}

// ReadFile reads a key file. For a private kind it refuses a file that
// group or others may read, as ssh does.
func ReadFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	if len(data) > fileHeader && Kind(data[5]).Private() && runtime.GOOS != "windows" {
		if err := checkPrivateMode(path); err != nil {
			clear(data)
			return nil, err
		}
	}
	return data, nil
}

func checkPrivateMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("keys: %s: %w (mode %04o, want 0600)", path, protocol.ErrKeyFileMode, fi.Mode().Perm())
	}
	return nil
}

// ErrExists is returned by WriteFile when the file exists and overwriting
// was not asked for.
var ErrExists = errors.New("keys: file exists (refusing to overwrite a key)")

// WriteFile writes data to path with mode 0600, atomically (temp file,
// fsync, rename, fsync of the directory). It refuses to replace an
// existing file unless overwrite is set.
func WriteFile(path string, data []byte, overwrite bool) error {
	if _, err := os.Lstat(path); err == nil && !overwrite {
		return fmt.Errorf("%w: %s", ErrExists, path)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keys: %w", err)
	}
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	return nil
}
