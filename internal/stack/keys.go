package stack

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/commsec/communicator/internal/atomicfile"
	"github.com/commsec/communicator/protocol/keys"
)

// The key pairs of a data directory, named as 'ksctl init' names them.
var (
	operatorPair  = pairSpec{"operator", keys.KindOperatorPrivate, keys.KindOperatorPublic}
	keyserverPair = pairSpec{"keyserver", keys.KindKeyserverPrivate, keys.KindKeyserverPublic}
	gatewayPair   = pairSpec{"gateway", keys.KindServerPrivate, keys.KindServerPublic}
)

type pairSpec struct {
	base      string // file name without .key/.pub
	priv, pub keys.Kind
}

// Keys are the stack's key pairs: where they are, and what the stack
// holds of them.
type Keys struct {
	Dir       string           // DATA/keys
	Created   []string         // the pairs made on this start ("operator", ...): all three on a first run
	Operator  [32]byte         // the operator's public key, allowed to use the admin API
	Keyserver *keys.SigningKey // Sk_Ks
	Gateway   *keys.SigningKey // Sk_S
}

// Path is the file of a key pair: base "keyserver", ext ".key" or ".pub".
func (k *Keys) Path(base, ext string) string { return filepath.Join(k.Dir, base+ext) }

// Wipe clears the private keys (best effort: Go may have copied them).
func (k *Keys) Wipe() {
	for _, s := range []*keys.SigningKey{k.Keyserver, k.Gateway} {
		if s != nil {
			s.Wipe()
		}
	}
}

// loadKeys reads the key pairs in dir, creating those that do not exist
// yet (private files 0600, public 0644). It refuses a private file others
// may read, a public file that does not match its private key, and a
// public file whose private key is gone.
func loadKeys(dir string) (*Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("stack: keys directory: %w", err)
	}
	k := &Keys{Dir: dir}
	op, err := k.pair(operatorPair)
	if err != nil {
		return nil, err
	}
	k.Operator = op.Public()
	op.Wipe() // the stack only checks the operator's signatures
	if k.Keyserver, err = k.pair(keyserverPair); err != nil {
		return nil, err
	}
	if k.Gateway, err = k.pair(gatewayPair); err != nil {
		k.Wipe()
		return nil, err
	}
	return k, nil
}

func (k *Keys) pair(p pairSpec) (*keys.SigningKey, error) {
	s, created, err := loadPair(k.Dir, p)
	if created {
		k.Created = append(k.Created, p.base)
	}
	return s, err
}

// loadPair reads one key pair, or creates it when neither file exists.
func loadPair(dir string, p pairSpec) (*keys.SigningKey, bool, error) {
	priv, pub := filepath.Join(dir, p.base+".key"), filepath.Join(dir, p.base+".pub")
	privExists, err := exists(priv)
	if err != nil {
		return nil, false, err
	}
	if !privExists {
		pubExists, err := exists(pub)
		if err != nil {
			return nil, false, err
		}
		if pubExists {
			return nil, false, orphanPub(pub, priv)
		}
		k, err := createPair(priv, pub, p)
		return k, true, err
	}
	k, err := readPrivate(priv, p.priv)
	if err != nil {
		return nil, false, err
	}
	if err := checkPublic(pub, p.pub, k.Public()); err != nil {
		k.Wipe()
		return nil, false, err
	}
	return k, false, nil
}

func orphanPub(pub, priv string) error {
	return fmt.Errorf("stack: %s exists but %s does not; refusing to make a new key that everything trusting the old one would reject (restore %s, or remove %s to start afresh)",
		pub, priv, priv, pub)
}

func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stack: %w", err)
	}
	return true, nil
}

// createPair generates a key pair and writes its two files.
func createPair(priv, pub string, p pairSpec) (*keys.SigningKey, error) {
	k, err := keys.GenerateSigningKey(nil)
	if err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	data := keys.EncodeSigningKey(p.priv, k)
	defer clear(data)
	if err := keys.WriteFile(priv, data, false); err != nil {
		k.Wipe()
		return nil, fmt.Errorf("stack: %w", err)
	}
	if err := writePublic(pub, p.pub, k.Public()); err != nil {
		k.Wipe()
		return nil, err
	}
	return k, nil
}

func writePublic(path string, kind keys.Kind, pub [32]byte) error {
	if err := atomicfile.Write(path, keys.EncodePublicKey(kind, pub), 0o644); err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	return nil
}

// readPrivate reads a private key file; keys.ReadFile refuses one that
// group or others may read.
func readPrivate(path string, kind keys.Kind) (*keys.SigningKey, error) {
	data, err := keys.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	defer clear(data)
	k, err := keys.DecodeSigningKey(data, kind)
	if err != nil {
		return nil, fmt.Errorf("stack: %s: %w", path, err)
	}
	return k, nil
}

// checkPublic checks that the public file matches want, writing it again
// if it is missing (it can be derived from the private key).
func checkPublic(path string, kind keys.Kind, want [32]byte) error {
	data, err := keys.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return writePublic(path, kind, want)
	}
	if err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	got, err := keys.DecodePublicKey(data, kind)
	if err != nil {
		return fmt.Errorf("stack: %s: %w", path, err)
	}
	if got != want {
		return fmt.Errorf("stack: %s does not match the private key beside it; remove it and it is written again from the private key", path)
	}
	return nil
}
