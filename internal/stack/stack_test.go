package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/internal/cmdtest"
	"github.com/commsec/communicator/internal/service"
	"github.com/commsec/communicator/keyserver/admin"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

func start(t *testing.T, dir string) *Stack {
	t.Helper()
	s, err := Start(t.Context(), Config{DataDir: dir, Gateway: "127.0.0.1:0", HTTP: "127.0.0.1:0", NATSListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestFirstRunAndRestart: the first start makes the keys (private ones
// 0600), serves one /metrics for all three services and answers ksctl's
// signed requests over the loopback NATS listener; a second start on the
// same directory reuses the keys and the event log.
func TestFirstRunAndRestart(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir)
	if len(s.Keys().Created) != 3 {
		t.Errorf("created %v on a first run", s.Keys().Created)
	}
	checkModes(t, filepath.Join(dir, "keys"))
	base := "http://" + s.HTTPAddr()
	if code, body := cmdtest.Get(t, base+"/readyz"); code != 200 {
		t.Errorf("readyz: %d %q", code, body)
	}
	createGroupAsOperator(t, s.NATSURL(), filepath.Join(dir, "creds", "admin.nk"), filepath.Join(dir, "keys", "operator.key"))
	if err := s.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, text := cmdtest.Get(t, base+"/metrics")
	for _, want := range []string{"\ncomm_keyserver_groups 1\n", "\ncomm_keyserver_admin_requests_total 1\n",
		"\ncomm_relay_partitions_owned 64\n", "\ncomm_relay_log_position 1\n", "\ncomm_gateway_connections 0\n", "\ncomm_gateway_log_position 1\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
	pkS, pkKs := s.Keys().Gateway.Public(), s.Keys().Keyserver.Public()
	s.Close()
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("http still answers after Close")
	}

	again := start(t, dir)
	if len(again.Keys().Created) != 0 || again.Keys().Gateway.Public() != pkS || again.Keys().Keyserver.Public() != pkKs {
		t.Errorf("keys not reused: created %v", again.Keys().Created)
	}
	again.Keyserver().Projection().Read(func(st *fold.State) {
		if _, ok := st.GroupByName("ops"); !ok {
			t.Error("group ops lost across a restart")
		}
	})
}

func checkModes(t *testing.T, dir string) {
	t.Helper()
	for _, base := range []string{"operator", "keyserver", "gateway"} {
		for ext, mode := range map[string]os.FileMode{".key": 0o600, ".pub": 0o644} {
			fi, err := os.Stat(filepath.Join(dir, base+ext))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != mode {
				t.Errorf("%s%s: mode %04o, want %04o", base, ext, fi.Mode().Perm(), mode)
			}
		}
	}
}

// createGroupAsOperator does what `ksctl --nats URL --nats-creds CREDS
// --operator-key FILE group create ops` does.
func createGroupAsOperator(t *testing.T, url, creds, keyFile string) {
	t.Helper()
	opts, err := service.NATSClient{Creds: creds}.Options("ksctl")
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	data, err := keys.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	op, err := keys.DecodeSigningKey(data, keys.KindOperatorPrivate)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := (&admin.Client{NC: nc, Operator: op}).Do(ctx, admin.OpCreate, admin.Args{Name: "ops"}); err != nil {
		t.Fatal(err)
	}
}

// TestKeyFileRefusals: a start is refused, naming the file, when a private
// key is readable by others, when a public key does not match its private
// key, or when only the public half of a pair is left.
func TestKeyFileRefusals(t *testing.T) {
	cases := []struct {
		name  string
		spoil func(dir string) error
		want  string
	}{
		{"private key readable by others", func(dir string) error {
			return os.Chmod(filepath.Join(dir, "gateway.key"), 0o640)
		}, "gateway.key"},
		{"public key of another pair", func(dir string) error {
			other, _ := os.ReadFile(filepath.Join(dir, "operator.pub"))
			k, _ := keys.DecodePublicKey(other, keys.KindOperatorPublic)
			return os.WriteFile(filepath.Join(dir, "keyserver.pub"), keys.EncodePublicKey(keys.KindKeyserverPublic, k), 0o644)
		}, "keyserver.pub does not match"},
		{"private key gone", func(dir string) error {
			return os.Remove(filepath.Join(dir, "keyserver.key"))
		}, "keyserver.key does not;"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := loadKeys(filepath.Join(dir, "keys")); err != nil {
				t.Fatal(err)
			}
			if err := c.spoil(filepath.Join(dir, "keys")); err != nil {
				t.Fatal(err)
			}
			_, err := Start(t.Context(), Config{DataDir: dir, Gateway: "127.0.0.1:0", HTTP: "127.0.0.1:0"})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
		})
	}
}

// TestMissingPublicKeyRewritten: a public key file is derived from its
// private key, so a lost one is written again.
func TestMissingPublicKeyRewritten(t *testing.T) {
	dir := t.TempDir()
	first, err := loadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "gateway.pub")); err != nil {
		t.Fatal(err)
	}
	again, err := loadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "gateway.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if pub, err := keys.DecodePublicKey(data, keys.KindServerPublic); err != nil || pub != first.Gateway.Public() || len(again.Created) != 0 {
		t.Errorf("gateway.pub %x, %v; created %v", pub, err, again.Created)
	}
}

// TestNATSListenerTaken: a taken NATS address is reported at once.
func TestNATSListenerTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	start := time.Now()
	_, err = Start(t.Context(), Config{DataDir: t.TempDir(), Gateway: "127.0.0.1:0", HTTP: "127.0.0.1:0", NATSListen: ln.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "address already in use") || time.Since(start) > 5*time.Second {
		t.Fatalf("got %v after %v", err, time.Since(start))
	}
}

// TestNATSListenerMustBeLoopback: the embedded server has no
// authentication, so it listens on loopback only.
func TestNATSListenerMustBeLoopback(t *testing.T) {
	_, err := Start(t.Context(), Config{DataDir: t.TempDir(), Gateway: "127.0.0.1:0", HTTP: "127.0.0.1:0", NATSListen: "0.0.0.0:0"})
	if err == nil || !strings.Contains(err.Error(), "not loopback") {
		t.Fatalf("got %v", err)
	}
}

// TestDataDirLocked: a second stack on a data directory in use is refused
// with an error naming the first one's PID, before it touches anything;
// once the first stops, the directory is free again. Before, the second
// started, and on the next start JetStream rebuilt a corrupt bucket.
func TestDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	first := start(t, dir)
	_, err := Start(t.Context(), Config{DataDir: dir, Gateway: "127.0.0.1:0", HTTP: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("in use by another commstack (pid %d)", os.Getpid())) {
		t.Fatalf("a second stack on the same directory: %v", err)
	}
	first.Close()
	if _, err := os.Stat(filepath.Join(dir, LockFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the lock file outlives the stack: %v", err)
	}
	start(t, dir).Close()
}

// TestAcceptedShardsFixed: the stack makes the K it is given on a new
// data directory, keeps it when restarted without one, and refuses to
// start with another.
func TestAcceptedShardsFixed(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, Gateway: "127.0.0.1:0", HTTP: "127.0.0.1:0", AcceptedShards: 2}
	s, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if k := s.Keyserver().Shards(); k != 2 {
		t.Errorf("K = %d on a new data directory, want 2", k)
	}
	s.Close()
	cfg.AcceptedShards = 8
	if s, err = Start(t.Context(), cfg); !errors.Is(err, streams.ErrShardsFixed) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("K = 8 on a data directory of 2: %v", err)
	}
	cfg.AcceptedShards = 0
	again, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(again.Close)
	if k := again.Keyserver().Shards(); k != 2 {
		t.Errorf("K = %d after a restart without one, want 2", k)
	}
}
