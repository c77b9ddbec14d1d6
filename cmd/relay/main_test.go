package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/cmdtest"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/internal/stacktest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/protocol/replay"
	"github.com/commsec/communicator/streams"
)

// keyFiles writes the keyserver's key pair as ksctl init does.
type keyFiles struct {
	dir, ksKey, ksPub string
	ks                *keys.SigningKey
}

func writeKeys(t *testing.T) keyFiles {
	t.Helper()
	dir := t.TempDir()
	ks, _ := keys.GenerateSigningKey(nil)
	f := keyFiles{dir: dir, ksKey: filepath.Join(dir, "keyserver.key"), ksPub: filepath.Join(dir, "keyserver.pub"), ks: ks}
	cmdtest.Must(t, keys.WriteFile(f.ksKey, keys.EncodeSigningKey(keys.KindKeyserverPrivate, ks), false))
	cmdtest.Must(t, os.WriteFile(f.ksPub, keys.EncodePublicKey(keys.KindKeyserverPublic, ks.Public()), 0o644))
	return f
}

// world is a keyserver with a group ops of alice.
type world struct {
	alice *keys.ClientIdentity
	group protocol.GroupID
}

func newWorld(t *testing.T, s *natstest.Server, ks *keys.SigningKey) world {
	t.Helper()
	k, err := keyserver.Start(t.Context(), s.Conn(t, natsauth.Keyserver), keyserver.Config{Key: ks})
	cmdtest.Must(t, err)
	t.Cleanup(k.Close)
	alice, _ := keys.GenerateClientIdentity(nil)
	cmdtest.Must(t, k.RegisterClient(t.Context(), keyserver.Actor{}, alice.Public(), "alice"))
	g, err := k.CreateGroup(t.Context(), keyserver.Actor{}, "ops", record.Policy{})
	cmdtest.Must(t, err)
	_, err = k.AddMembers(t.Context(), keyserver.Actor{}, "ops", []string{"alice"})
	cmdtest.Must(t, err)
	return world{alice: alice, group: g}
}

// send does what a gateway does and returns the relay's verdict.
func (w world) send(t *testing.T, nc *nats.Conn, counter uint64) string {
	t.Helper()
	h := envelope.Header{Group: w.group, Epoch: 1, Sender: w.alice.ID(), Counter: counter}
	e, _ := envelope.Seal(nil, h, &[32]byte{1}, []byte("hello"), w.alice.Sig, nil)
	m := nats.NewMsg(streams.InboundSubject(w.group))
	m.Data = e
	m.Header.Set(streams.HeaderSender, w.alice.ID().String())
	reply, err := nc.RequestMsg(m, 10*time.Second)
	cmdtest.Must(t, err)
	return reply.Header.Get(streams.HeaderStatus) + "/" + reply.Header.Get(streams.HeaderReason)
}

// TestServe runs the command against a real NATS server over TLS (the CA
// from COMM_NATS_CA), with the key file from the environment and the rest
// from flags: it gets ready, decides messages, serves health and metrics,
// and shuts down cleanly when its context ends, releasing its partitions.
func TestServe(t *testing.T) {
	s := natstest.StartTLS(t)
	kf := writeKeys(t)
	w := newWorld(t, s, kf.ks)
	gw := s.Conn(t, natsauth.Gateway) // sends as a gateway does
	vars := map[string]string{"COMM_NATS_CA": s.CAFile, "COMM_KEYSERVER_PUB": kf.ksPub, "COMM_HTTP": "127.0.0.1:1", "COMM_RELAY_ID": "env-relay"}
	stderr := &cmdtest.Log{}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--nats", s.ClientURL(), "--nats-creds", s.CredsFile(natsauth.Relay), "--http", "127.0.0.1:0", "--log-format", "json", "--grace", "1m", "--id", "r1"},
			cmdtest.Env(vars), io.Discard, stderr)
	}()
	addr := stderr.Field(t, "http listening: /metrics /healthz /readyz", "addr")
	if code, body := cmdtest.Get(t, "http://"+addr+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}
	if got := stderr.Field(t, "relay ready", "partitions"); got != fmt.Sprint(streams.Partitions) {
		t.Errorf("a lone relay owns %s partitions, want %d", got, streams.Partitions)
	}
	if got := stderr.Field(t, "relay ready", "id"); got != "r1" {
		t.Errorf("id %q, want r1 (the flag wins over COMM_RELAY_ID)", got)
	}
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"health", "--http", addr}, cmdtest.Env(nil), &out, &errOut); code != 0 {
		t.Errorf("health of a ready relay: exit %d, %s", code, errOut.String())
	}
	if v := w.send(t, gw, 1); v != "accepted/" {
		t.Errorf("first message: %s", v)
	}
	if v := w.send(t, gw, 1); v != "duplicate/" {
		t.Errorf("the same counter again: %s", v)
	}
	if v := w.send(t, gw, 1+replay.Size); v != "accepted/" {
		t.Errorf("a window above: %s", v)
	}
	if v := w.send(t, gw, 1); v != "refused/replayed_counter" {
		t.Errorf("below the window: %s", v)
	}
	checkMetrics(t, addr, []string{
		"# TYPE comm_relay_verdicts_total counter\n",
		`comm_relay_verdicts_total{reason="",verdict="accepted"} 2` + "\n",
		`comm_relay_verdicts_total{reason="",verdict="duplicate"} 1` + "\n",
		`comm_relay_verdicts_total{reason="replayed_counter",verdict="refused"} 1` + "\n",
		fmt.Sprintf("\ncomm_relay_partitions_owned %d\n", streams.Partitions),
		"\ncomm_relay_log_position 3\n", "\ncomm_relay_counter_conflicts_total 0\n", "\ncomm_relay_events_refused_total 0\n",
		fmt.Sprintf(`comm_relay_leases_total{event="claimed"} %d`+"\n", streams.Partitions),
	})
	checkHistograms(t, addr)
	cancel()
	cmdtest.WaitExit(t, done, stderr)
	stderr.Field(t, "stopped cleanly", "level")
	if code := run(t.Context(), []string{"health", "--http", addr, "--timeout", "1s"}, cmdtest.Env(nil), &out, &errOut); code != 1 {
		t.Errorf("health after shutdown: exit %d, want 1", code)
	}
	checkReleased(t, s.Conn(t, natsauth.Relay))
}

// checkHistograms scrapes /metrics as Prometheus would: the Go runtime's
// and the process's metrics, and the relay's histograms with their
// buckets, holding the four decisions and the two writes of TestServe.
func checkHistograms(t *testing.T, addr string) {
	t.Helper()
	text, families := cmdtest.Scrape(t, "http://"+addr+"/metrics")
	cmdtest.CheckRuntime(t, families)
	if n := cmdtest.Observations(t, text, families, "comm_relay_decision_seconds"); n != 4 {
		t.Errorf("comm_relay_decision_seconds holds %d decisions, want 4", n)
	}
	if n := cmdtest.Observations(t, text, families, "comm_relay_store_write_seconds"); n != 2 {
		t.Errorf("comm_relay_store_write_seconds holds %d writes, want 2", n)
	}
}

func checkMetrics(t *testing.T, addr string, want []string) {
	t.Helper()
	_, text := cmdtest.Get(t, "http://"+addr+"/metrics")
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("metrics lack %q:\n%s", w, text)
		}
	}
}

// checkReleased: a relay that stopped cleanly holds no lease.
func checkReleased(t *testing.T, nc *nats.Conn) {
	t.Helper()
	js, err := jetstream.New(nc)
	cmdtest.Must(t, err)
	kv, err := js.KeyValue(t.Context(), streams.Relays)
	cmdtest.Must(t, err)
	lister, err := kv.ListKeys(t.Context())
	cmdtest.Must(t, err)
	for k := range lister.Keys() {
		t.Errorf("lease or presence %q left behind", k)
	}
}

// TestNotReadyWithoutNATS: while NATS cannot be reached the relay is
// alive but not ready, and says why.
func TestNotReadyWithoutNATS(t *testing.T) {
	kf := writeKeys(t)
	stderr := &cmdtest.Log{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--nats", "nats://127.0.0.1:1", "--keyserver-pub", kf.ksPub,
			"--http", "127.0.0.1:0", "--log-format", "json"}, cmdtest.Env(nil), io.Discard, stderr)
	}()
	addr := stderr.Field(t, "http listening: /metrics /healthz /readyz", "addr")
	cmdtest.CheckWaitingForNATS(t, addr)
	var errOut bytes.Buffer
	if code := run(t.Context(), []string{"health", "--http", addr}, cmdtest.Env(nil), io.Discard, &errOut); code != 1 || !strings.Contains(errOut.String(), "503") {
		t.Errorf("health: exit %d %q", code, errOut.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d after cancel while waiting for NATS", code)
	}
}

// TestNotReadyWithoutJetStream: a relay whose NATS connection is up but
// through which JetStream no longer answers (here the event stream's
// account loses JetStream) is not ready, says so, and fails `relay
// health`; it still stops cleanly.
func TestNotReadyWithoutJetStream(t *testing.T) {
	s := natstest.Start(t)
	kf := writeKeys(t)
	newWorld(t, s, kf.ks)
	stderr := &cmdtest.Log{}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--nats", s.ClientURL(), "--nats-creds", s.CredsFile(natsauth.Relay), "--keyserver-pub", kf.ksPub,
			"--http", "127.0.0.1:0", "--log-format", "json"}, cmdtest.Env(nil), io.Discard, stderr)
	}()
	addr := stderr.Field(t, "http listening: /metrics /healthz /readyz", "addr")
	stderr.Field(t, "relay ready", "id")
	cmdtest.CheckJetStreamLoss(t, run, "relay", addr, func() error { return s.DisableJetStream(streams.Events) })
	cancel()
	cmdtest.WaitExit(t, done, stderr)
}

// TestKeyFileErrors: a wrong or missing key file is refused with the flag
// that named it and the keys package's reason.
func TestKeyFileErrors(t *testing.T) {
	kf := writeKeys(t)
	cases := []struct {
		name, file string
		want       []string
	}{
		{"missing", filepath.Join(kf.dir, "nope.pub"), []string{"--keyserver-pub", "no such file"}},
		{"private key instead", kf.ksKey, []string{"--keyserver-pub", "want a keyserver public key", "keyserver key (private)"}},
		{"not a key file", writeFile(t, kf.dir, "junk.pub", "hello"), []string{"--keyserver-pub", "junk.pub"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			args := []string{"--keyserver-pub", c.file, "--nats", "nats://127.0.0.1:1", "--http", "127.0.0.1:0", "--log-format", "json"}
			if code := run(t.Context(), args, cmdtest.Env(nil), io.Discard, &stderr); code != 1 {
				t.Fatalf("exit %d, want 1: %s", code, stderr.String())
			}
			for _, w := range c.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("error lacks %q: %s", w, stderr.String())
				}
			}
		})
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	cmdtest.Must(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

func TestUsage(t *testing.T) {
	pub := []string{"--keyserver-pub", "k.pub"}
	cases := []struct {
		args []string
		vars map[string]string
		want string
	}{
		{nil, nil, "--keyserver-pub is required"},
		{[]string{"--bogus"}, nil, "flag provided but not defined"},
		{append(pub, "--replicas", "0"), nil, "--replicas 0"},
		{append(pub, "--grace", "0s"), nil, "--grace must be positive"},
		{append(pub, "--id", "a.b"), nil, `--id "a.b"`},
		{pub, map[string]string{"COMM_RETENTION": "a week"}, "COMM_RETENTION"},
		{append(pub, "--nats", "http://x:1"), nil, "--nats"},
		{append(pub, "--log-format", "xml"), nil, "log format"},
		{[]string{"extra"}, nil, `unexpected argument "extra"`},
		{[]string{"health", "extra"}, nil, `unexpected argument "extra"`},
	}
	for _, c := range cases {
		var stderr bytes.Buffer
		if code := run(t.Context(), c.args, cmdtest.Env(c.vars), io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: exit %d %q, want 2 and %q", c.args, code, stderr.String(), c.want)
		}
	}
}

// TestFlagWinsOverEnv: a flag beats its variable, the variable the default.
func TestFlagWinsOverEnv(t *testing.T) {
	vars := map[string]string{"COMM_HTTP": "127.0.0.1:7000", "COMM_KEYSERVER_PUB": "env.pub", "COMM_GRACE": "2m", "COMM_REPLICAS": "3"}
	cfg, err := parseFlags([]string{"--http", "127.0.0.1:8000", "--grace", "45s"}, cmdtest.Env(vars))
	cmdtest.Must(t, err)
	if cfg.httpAddr != "127.0.0.1:8000" || cfg.keyserverPub != "env.pub" || cfg.replicas != 3 || cfg.grace != 45*time.Second {
		t.Errorf("got %+v", cfg)
	}
	if cfg.retention != streams.DefaultRetention || !validID.MatchString(cfg.id) {
		t.Errorf("defaults: retention %v, id %q", cfg.retention, cfg.id)
	}
}

// TestDefaultID: the host name and a random suffix, a valid relay name,
// different each time.
func TestDefaultID(t *testing.T) {
	a, b := defaultID(), defaultID()
	if a == b || !validID.MatchString(a) {
		t.Errorf("ids %q and %q", a, b)
	}
	host, _ := os.Hostname()
	if first, _, _ := strings.Cut(host, "."); first != "" && validID.MatchString(first) && !strings.HasPrefix(a, first+"-") {
		t.Errorf("id %q does not start with the host name %q", a, first)
	}
}

// TestHelp: --help explains every flag and its environment variable.
func TestHelp(t *testing.T) {
	var stdout bytes.Buffer
	if code := run(t.Context(), []string{"--help"}, cmdtest.Env(nil), &stdout, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	newFlagSet(&config{}).VisitAll(func(f *flag.Flag) {
		for _, w := range []string{"--" + f.Name + " ", "[" + envVars[f.Name] + "]"} {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("help lacks %q", w)
			}
		}
	})
	for _, w := range []string{"relay health", "Example:", "/readyz", "SIGTERM", "comm_relay_verdicts_total"} {
		if !strings.Contains(stdout.String(), w) {
			t.Errorf("help lacks %q", w)
		}
	}
}

// TestBinarySIGTERM builds the real binary, runs it until it is ready and
// stops it with SIGTERM: it exits 0 after a graceful shutdown.
func TestBinarySIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "relay")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	s := natstest.Start(t)
	stacktest.CreateStreams(t, s.Conn(t, natsauth.Keyserver))
	kf := writeKeys(t)
	stderr := &cmdtest.Log{}
	cmd := exec.Command(bin, "--nats", s.ClientURL(), "--nats-creds", s.CredsFile(natsauth.Relay), "--http", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "COMM_KEYSERVER_PUB="+kf.ksPub, "COMM_LOG_FORMAT=json")
	cmd.Stderr = stderr
	cmdtest.Must(t, cmd.Start())
	defer cmd.Process.Kill()
	addr := stderr.Field(t, "http listening: /metrics /healthz /readyz", "addr")
	stderr.Field(t, "relay ready", "level")
	if out, err := exec.Command(bin, "health", "--http", addr).CombinedOutput(); err != nil {
		t.Fatalf("relay health: %v: %s", err, out)
	}
	cmdtest.Must(t, cmd.Process.Signal(syscall.SIGTERM))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	stderr.Field(t, "stopped cleanly", "level")
}
