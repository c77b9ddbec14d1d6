package main

import (
	"crypto/sha256"
	"encoding/binary"
	"runtime"
	"sync"

	"github.com/commsec/communicator/protocol/keys"
)

// The idle clients' identities are derived from a seed that the parent
// passes to its children, so that neither has to hand the other
// thousands of keys: client i's signing seed is SHA-256("sig" | seed |
// i) and its key-wrap scalar SHA-256("wrap" | seed | i).
func derived(label string, seed *[32]byte, i int) [32]byte {
	h := sha256.New()
	h.Write([]byte(label))
	h.Write(seed[:])
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(i)))
	return [32]byte(h.Sum(nil))
}

// idleSigningKey is client i's Sk_Cn.
func idleSigningKey(seed *[32]byte, i int) *keys.SigningKey {
	s := derived("sig", seed, i)
	return keys.NewSigningKey(&s)
}

// idlePublic is client i's public half, for its registration.
func idlePublic(seed *[32]byte, i int) (keys.ClientPublic, error) {
	scalar := derived("wrap", seed, i)
	wrap, err := keys.NewWrapKey(&scalar)
	if err != nil {
		return keys.ClientPublic{}, err
	}
	sig := idleSigningKey(seed, i)
	return (&keys.ClientIdentity{Sig: sig, Wrap: wrap}).Public(), nil
}

// idlePublics derives clients [0, n) on every core.
func idlePublics(seed *[32]byte, n int) ([]keys.ClientPublic, error) {
	out := make([]keys.ClientPublic, n)
	errs := make([]error, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			for i := w; i < n && errs[w] == nil; i += len(errs) {
				out[i], errs[w] = idlePublic(seed, i)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
