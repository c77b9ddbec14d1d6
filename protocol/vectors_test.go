package protocol_test

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/cryptotest"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/internal/vectors"
)

//go:generate go test -run TestVectorFilesUpToDate -update .

var update = flag.Bool("update", false, "rewrite testdata/vectors from the generator")

const vectorDir = "testdata/vectors"

// TestVectorFilesUpToDate proves that the committed vectors are exactly
// what the generator makes now (with -update it rewrites them).
func TestVectorFilesUpToDate(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 1) // fixes HPKE's encapsulation randomness
	vs, err := vectors.Generate()
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	if *update {
		writeVectors(t, vs)
	}
	onDisk, _ := filepath.Glob(filepath.Join(vectorDir, "*.txt"))
	var names []string
	for _, v := range vs {
		names = append(names, filepath.Join(vectorDir, v.File))
		got, err := os.ReadFile(filepath.Join(vectorDir, v.File))
		if err != nil {
			t.Errorf("%s: %v (run go generate ./protocol)", v.File, err)
			continue
		}
		if !bytes.Equal(got, vectors.Format(v)) {
			t.Errorf("%s differs from the generator's output (run go generate ./protocol)", v.File)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, onDisk) {
		t.Errorf("vector files on disk %v, generator makes %v", onDisk, names)
	}
}

func writeVectors(t *testing.T, vs []*vectors.Vector) {
	old, _ := filepath.Glob(filepath.Join(vectorDir, "*.txt"))
	for _, f := range old {
		os.Remove(f)
	}
	if err := os.MkdirAll(vectorDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if err := os.WriteFile(filepath.Join(vectorDir, v.File), vectors.Format(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestVectors walks every vector file and checks that the case produces
// exactly the expected outcome.
func TestVectors(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(vectorDir, "*.txt"))
	if len(files) < 50 {
		t.Fatalf("found %d vector files, want the full set", len(files))
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		v, err := vectors.Parse(filepath.Base(file), data)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(strings.TrimSuffix(v.File, ".txt"), func(t *testing.T) { checkVector(t, v) })
	}
}

var walkers = map[string]func(*testing.T, *vectorReader) error{
	"handshake": walkHandshake,
	"frame":     walkFrame,
	"envelope":  walkEnvelope,
	"bundle":    walkBundle,
	"keyfile":   walkKeyfile,
	"window":    walkWindow,
}

func checkVector(t *testing.T, v *vectors.Vector) {
	walk := walkers[v.Get("kind")]
	if walk == nil {
		t.Fatalf("unknown kind %q", v.Get("kind"))
	}
	expect := v.Get("expect")
	if expect != "ok" && !strings.HasPrefix(expect, "peer_") && protocol.ErrorByName(expect) == nil {
		t.Fatalf("expect: %q names no error", expect)
	}
	err := walk(t, &vectorReader{t: t, v: v})
	got := "ok"
	if err != nil {
		got = protocol.Reason(err)
	}
	if got != expect {
		t.Fatalf("got %s (%v), want %s", got, err, expect)
	}
}

// vectorReader reads fields, failing the test on a malformed file.
type vectorReader struct {
	t *testing.T
	v *vectors.Vector
}

func (r *vectorReader) bytes(name string) []byte {
	r.t.Helper()
	if !r.v.Has(name) {
		r.t.Fatalf("missing field %s", name)
	}
	b, err := r.v.Bytes(name)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

func (r *vectorReader) b32(name string) [32]byte {
	r.t.Helper()
	b := r.bytes(name)
	if len(b) != 32 {
		r.t.Fatalf("field %s: %d bytes, want 32", name, len(b))
	}
	return [32]byte(b)
}

func (r *vectorReader) uint(name string) uint64 {
	r.t.Helper()
	n, err := r.v.Uint(name)
	if err != nil {
		r.t.Fatal(err)
	}
	return n
}

// equal fails the test if a computed value differs from the file's.
func (r *vectorReader) equal(name string, got []byte) {
	r.t.Helper()
	if want := r.bytes(name); !bytes.Equal(got, want) {
		r.t.Fatalf("%s: computed %x, file says %x", name, got, want)
	}
}

// independentKeys derives the channel keys as docs/PROTOCOL.md writes the
// key schedule, without package handshake.
func independentKeys(t *testing.T, shared, th4 []byte) (c2s, s2c []byte) {
	prk, err := hkdf.Extract(sha256.New, shared, th4)
	if err != nil {
		t.Fatal(err)
	}
	info := func(label string) string {
		return label + string([]byte{protocol.Version}) + string(binary.BigEndian.AppendUint16(nil, uint16(protocol.SuiteX25519Ed25519)))
	}
	c2s, _ = hkdf.Expand(sha256.New, prk, info(protocol.LabelKeyC2S), 32)
	s2c, _ = hkdf.Expand(sha256.New, prk, info(protocol.LabelKeyS2C), 32)
	return c2s, s2c
}

func hashAll(msgs ...[]byte) []byte {
	h := sha256.New()
	for _, m := range msgs {
		h.Write(m)
	}
	return h.Sum(nil)
}
