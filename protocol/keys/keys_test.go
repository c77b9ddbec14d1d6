package keys_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
)

func TestClientIdentityFileRoundTrip(t *testing.T) {
	id, err := keys.GenerateClientIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "client.key")
	if err := keys.WriteFile(path, keys.EncodeClientIdentity(id), false); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o, want 0600", fi.Mode().Perm())
	}
	data, err := keys.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	back, err := keys.DecodeClientIdentity(data)
	if err != nil {
		t.Fatal(err)
	}
	if back.Public() != id.Public() {
		t.Fatal("identity changed across the file")
	}
	if err := keys.WriteFile(path, data, false); !errors.Is(err, keys.ErrExists) {
		t.Fatalf("overwrite without asking: got %v, want ErrExists", err)
	}
	if err := keys.WriteFile(path, data, true); err != nil {
		t.Fatalf("overwrite when asked: %v", err)
	}
}

func TestWrongKindSaysWhatItIs(t *testing.T) {
	k, _ := keys.GenerateSigningKey(nil)
	data := keys.EncodePublicKey(keys.KindServerPublic, k.Public())
	_, err := keys.DecodePublicKey(data, keys.KindKeyserverPublic)
	if !errors.Is(err, protocol.ErrKeyFileKind) {
		t.Fatalf("got %v, want ErrKeyFileKind", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "keyserver public key") || !strings.Contains(msg, "server public key") {
		t.Fatalf("error %q does not say what was wanted and what was found", msg)
	}
}

func TestPublicFileMayBeReadable(t *testing.T) {
	k, _ := keys.GenerateSigningKey(nil)
	path := filepath.Join(t.TempDir(), "server.pub")
	os.WriteFile(path, keys.EncodePublicKey(keys.KindServerPublic, k.Public()), 0o644)
	if _, err := keys.ReadFile(path); err != nil {
		t.Fatalf("a public key file at 0644 must load: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	k, _ := keys.GenerateSigningKey(nil)
	good := keys.EncodeSigningKey(keys.KindServerPrivate, k)
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, protocol.ErrKeyFileForeign},
		{"text", []byte("hello world"), protocol.ErrKeyFileForeign},
		{"magic only", good[:4], protocol.ErrKeyFileTruncated},
		{"truncated", good[:len(good)-1], protocol.ErrKeyFileTruncated},
		{"long", append(append([]byte(nil), good...), 0), protocol.ErrKeyFileTruncated},
		{"corrupt", flip(good, 8), protocol.ErrKeyFileChecksum},
		{"version", set(good, 4, 9), protocol.ErrKeyFileVersion},
		{"kind", set(good, 5, 0), protocol.ErrKeyFileKind},
	}
	for _, c := range cases {
		if _, _, err := keys.Decode(c.data); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func flip(b []byte, i int) []byte { c := append([]byte(nil), b...); c[i] ^= 1; return c }
func set(b []byte, i int, v byte) []byte {
	c := append([]byte(nil), b...)
	c[i] = v
	return c
}
