package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/commsec/communicator/clientsdk"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/cmdtest"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/internal/stacktest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/relay"
	"github.com/commsec/communicator/streams"
)

// keyFiles writes the gateway's key pair and the keyserver's public key
// as ksctl init does.
type keyFiles struct {
	dir, gwKey, ksPub string
	gw, ks            *keys.SigningKey
}

func writeKeys(t *testing.T) keyFiles {
	t.Helper()
	dir := t.TempDir()
	gw, _ := keys.GenerateSigningKey(nil)
	ks, _ := keys.GenerateSigningKey(nil)
	f := keyFiles{dir: dir, gwKey: filepath.Join(dir, "gateway.key"), ksPub: filepath.Join(dir, "keyserver.pub"), gw: gw, ks: ks}
	cmdtest.Must(t, keys.WriteFile(f.gwKey, keys.EncodeSigningKey(keys.KindServerPrivate, gw), false))
	cmdtest.Must(t, os.WriteFile(f.ksPub, keys.EncodePublicKey(keys.KindKeyserverPublic, ks.Public()), 0o644))
	return f
}

// world is a keyserver and a relay with a group ops of alice and bob.
type world struct {
	alice, bob *keys.ClientIdentity
	group      protocol.GroupID
}

func newWorld(t *testing.T, s *natstest.Server, ks *keys.SigningKey) world {
	t.Helper()
	k, err := keyserver.Start(t.Context(), s.Conn(t, natsauth.Keyserver), keyserver.Config{Key: ks, Streams: streams.Config{LeaseTTL: time.Second}})
	cmdtest.Must(t, err)
	t.Cleanup(k.Close)
	r, err := relay.Start(t.Context(), s.Conn(t, natsauth.Relay), relay.Config{KeyserverKey: ks.Public()})
	cmdtest.Must(t, err)
	t.Cleanup(r.Close)
	alice, _ := keys.GenerateClientIdentity(nil)
	bob, _ := keys.GenerateClientIdentity(nil)
	cmdtest.Must(t, k.RegisterClient(t.Context(), keyserver.Actor{}, alice.Public(), "alice"))
	cmdtest.Must(t, k.RegisterClient(t.Context(), keyserver.Actor{}, bob.Public(), "bob"))
	g, err := k.CreateGroup(t.Context(), keyserver.Actor{}, "ops", record.Policy{})
	cmdtest.Must(t, err)
	_, err = k.AddMembers(t.Context(), keyserver.Actor{}, "ops", []string{"alice", "bob"})
	cmdtest.Must(t, err)
	return world{alice: alice, bob: bob, group: g}
}

func dial(t *testing.T, addr string, id *keys.ClientIdentity, kf keyFiles) (*clientsdk.Client, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return clientsdk.Dial(ctx, clientsdk.Config{Addr: addr, Identity: id, ServerKey: kf.gw.Public(), KeyserverKey: kf.ks.Public()})
}

// TestServe runs the command against a real NATS server over TLS (the CA
// from COMM_NATS_CA), with the key files from the environment and the rest
// from flags: it gets ready, admits a registered client and refuses a
// stranger, forwards a message to the relay, serves health and metrics,
// and shuts down cleanly when its context ends.
func TestServe(t *testing.T) {
	s := natstest.StartTLS(t)
	kf := writeKeys(t)
	w := newWorld(t, s, kf.ks)
	vars := map[string]string{"COMM_NATS_CA": s.CAFile, "COMM_KEY": kf.gwKey, "COMM_KEYSERVER_PUB": kf.ksPub, "COMM_HTTP": "127.0.0.1:1", "COMM_QUEUE": "16"}
	stderr := &cmdtest.Log{}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--nats", s.ClientURL(), "--nats-creds", s.CredsFile(natsauth.Gateway), "--http", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--log-format", "json"},
			cmdtest.Env(vars), io.Discard, stderr)
	}()
	addr := stderr.Field(t, "http listening: /metrics /healthz /readyz", "addr")
	listen := stderr.Field(t, "gateway ready", "listen")
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"health", "--http", addr}, cmdtest.Env(nil), &out, &errOut); code != 0 {
		t.Errorf("health of a ready gateway: exit %d, %s", code, errOut.String())
	}
	alice, err := dial(t, listen, w.alice, kf)
	cmdtest.Must(t, err)
	defer alice.Close()
	bob, err := dial(t, listen, w.bob, kf)
	cmdtest.Must(t, err)
	defer bob.Close()
	cmdtest.Must(t, alice.WaitKey(t.Context(), w.group))
	cmdtest.Must(t, alice.Send(t.Context(), w.group, []byte("hello")))
	if m, err := stacktest.Receive(t, bob, 10*time.Second); err != nil || string(m.Payload) != "hello" {
		t.Fatalf("bob got %q, %v", m.Payload, err)
	}
	mallory, _ := keys.GenerateClientIdentity(nil)
	if c, err := dial(t, listen, mallory, kf); err == nil {
		c.Close()
		t.Error("an unregistered client was admitted")
	}
	pollMetrics(t, addr, []string{
		"\ncomm_gateway_connections 2\n", "\ncomm_gateway_handshakes_total 2\n",
		`comm_gateway_handshakes_refused_total{reason="denied"} 1` + "\n",
		`comm_gateway_sends_total{reason="",verdict="accepted"} 1` + "\n",
		"\ncomm_gateway_bundles_out_total 2\n", "\ncomm_gateway_log_position 4\n",
	})
	// The delivery is observed once written: live, or catch_up if bob's
	// session was still reading back when it came.
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		_, text := cmdtest.Get(t, "http://"+addr+"/metrics")
		if !regexp.MustCompile(`\ncomm_gateway_delivery_lag_seconds_count\{path="(live|catch_up)"\} 1\n`).MatchString(text) {
			return fmt.Errorf("the delivery to bob is not observed:\n%s", text)
		}
		return nil
	})
	checkHistograms(t, addr)
	cancel()
	cmdtest.WaitExit(t, done, stderr)
	stderr.Field(t, "stopped cleanly", "level")
	if code := run(t.Context(), []string{"health", "--http", addr, "--timeout", "1s"}, cmdtest.Env(nil), &out, &errOut); code != 1 {
		t.Errorf("health after shutdown: exit %d, want 1", code)
	}
}

// checkHistograms scrapes /metrics as Prometheus would: the Go runtime's
// and the process's metrics, and the gateway's histograms with their
// buckets, holding TestServe's two handshakes, one send and its one
// delivery.
func checkHistograms(t *testing.T, addr string) {
	t.Helper()
	text, families := cmdtest.Scrape(t, "http://"+addr+"/metrics")
	cmdtest.CheckRuntime(t, families)
	for name, want := range map[string]uint64{"comm_gateway_handshake_duration_seconds": 2,
		"comm_gateway_send_verdict_seconds": 1, "comm_gateway_delivery_lag_seconds": 1} {
		if n := cmdtest.Observations(t, text, families, name); n != want {
			t.Errorf("%s holds %d observations, want %d", name, n, want)
		}
	}
}

// pollMetrics waits until /metrics holds every line of want: the gateway
// counts a handshake after the client has returned from it.
func pollMetrics(t *testing.T, addr string, want []string) {
	t.Helper()
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		_, text := cmdtest.Get(t, "http://"+addr+"/metrics")
		for _, w := range want {
			if !strings.Contains(text, w) {
				return fmt.Errorf("metrics lack %q:\n%s", w, text)
			}
		}
		return nil
	})
}

// TestNotReadyWithoutNATS: while NATS cannot be reached the gateway is
// alive but not ready, and says why.
func TestNotReadyWithoutNATS(t *testing.T) {
	kf := writeKeys(t)
	stderr := &cmdtest.Log{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--nats", "nats://127.0.0.1:1", "--key", kf.gwKey, "--keyserver-pub", kf.ksPub,
			"--http", "127.0.0.1:0", "--log-format", "json"}, cmdtest.Env(nil), io.Discard, stderr)
	}()
	addr := stderr.Field(t, "http listening: /metrics /healthz /readyz", "addr")
	cmdtest.CheckWaitingForNATS(t, addr)
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d after cancel while waiting for NATS", code)
	}
}

// TestNotReadyWithoutJetStream: a gateway whose NATS connection is up
// but through which JetStream no longer answers (here the event stream's
// account loses JetStream) is not ready, says so, and fails `gateway
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
		done <- run(ctx, []string{"--nats", s.ClientURL(), "--nats-creds", s.CredsFile(natsauth.Gateway), "--key", kf.gwKey,
			"--keyserver-pub", kf.ksPub, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--log-format", "json"},
			cmdtest.Env(nil), io.Discard, stderr)
	}()
	addr := stderr.Field(t, "http listening: /metrics /healthz /readyz", "addr")
	stderr.Field(t, "gateway ready", "listen")
	cmdtest.CheckJetStreamLoss(t, run, "gateway", addr, func() error { return s.DisableJetStream(streams.Events) })
	cancel()
	cmdtest.WaitExit(t, done, stderr)
}

// TestListenInUse: a client address that is taken is an error naming
// --listen, exit 1.
func TestListenInUse(t *testing.T) {
	s := natstest.Start(t)
	stacktest.CreateStreams(t, s.Conn(t, natsauth.Keyserver))
	kf := writeKeys(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	cmdtest.Must(t, err)
	defer ln.Close()
	var stderr bytes.Buffer
	args := []string{"--nats", s.ClientURL(), "--nats-creds", s.CredsFile(natsauth.Gateway), "--key", kf.gwKey, "--keyserver-pub", kf.ksPub, "--listen", ln.Addr().String(),
		"--http", "127.0.0.1:0", "--log-format", "json"}
	if code := run(t.Context(), args, cmdtest.Env(nil), io.Discard, &stderr); code != 1 || !strings.Contains(stderr.String(), "--listen "+ln.Addr().String()) {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
}

// TestKeyFileErrors: a wrong, missing or exposed key file is refused with
// the flag that named it and the keys package's reason.
func TestKeyFileErrors(t *testing.T) {
	kf := writeKeys(t)
	loose := filepath.Join(kf.dir, "loose.key")
	data, _ := os.ReadFile(kf.gwKey)
	cmdtest.Must(t, os.WriteFile(loose, data, 0o644))
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"missing key", []string{"--key", filepath.Join(kf.dir, "nope.key"), "--keyserver-pub", kf.ksPub}, []string{"--key", "no such file"}},
		{"public key as private", []string{"--key", kf.ksPub, "--keyserver-pub", kf.ksPub}, []string{"--key", "want a server key (private)"}},
		{"readable by others", []string{"--key", loose, "--keyserver-pub", kf.ksPub}, []string{"--key", "0644"}},
		{"private key as keyserver-pub", []string{"--key", kf.gwKey, "--keyserver-pub", kf.gwKey}, []string{"--keyserver-pub", "want a keyserver public key"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			args := append(c.args, "--nats", "nats://127.0.0.1:1", "--http", "127.0.0.1:0", "--log-format", "json")
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

func TestUsage(t *testing.T) {
	k := []string{"--key", "g.key", "--keyserver-pub", "k.pub"}
	cases := []struct {
		args []string
		vars map[string]string
		want string
	}{
		{nil, nil, "--key is required"},
		{[]string{"--key", "g.key"}, nil, "--keyserver-pub is required"},
		{[]string{"--bogus"}, nil, "flag provided but not defined"},
		{append(k, "--max-handshakes", "0"), nil, "--max-handshakes 0"},
		{append(k, "--max-handshakes-per-source", "0"), nil, "--max-handshakes-per-source 0"},
		{append(k, "--m1-timeout", "20s"), nil, "--m1-timeout 20s"},
		{append(k, "--queue", "-1"), nil, "--queue -1"},
		{append(k, "--idle-timeout", "10ms"), nil, "--idle-timeout 10ms"},
		{append(k, "--replicas", "7"), nil, "--replicas 7"},
		{append(k, "--listen", "7400"), nil, `--listen "7400"`},
		{append(k, "--name", "gw.1"), nil, `--name: name "gw.1"`},
		{k, map[string]string{"COMM_QUEUE": "lots"}, "COMM_QUEUE"},
		{append(k, "--nats", "http://x:1"), nil, "--nats"},
		{append(k, "--log-level", "loud"), nil, "log level"},
		{[]string{"extra"}, nil, `unexpected argument "extra"`},
		{[]string{"health", "--bogus"}, nil, "flag provided but not defined"},
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
	vars := map[string]string{"COMM_LISTEN": "0.0.0.0:7400", "COMM_KEY": "env.key", "COMM_KEYSERVER_PUB": "env.pub",
		"COMM_MAX_HANDSHAKES": "32", "COMM_IDLE_TIMEOUT": "2m", "COMM_M1_TIMEOUT": "1s"}
	cfg, err := parseFlags([]string{"--listen", "127.0.0.1:7500", "--max-handshakes", "8"}, cmdtest.Env(vars))
	cmdtest.Must(t, err)
	if cfg.listen != "127.0.0.1:7500" || cfg.keyFile != "env.key" || cfg.maxHandshakes != 8 || cfg.idleTimeout != 2*time.Minute {
		t.Errorf("got %+v", cfg)
	}
	if cfg.m1Timeout != time.Second {
		t.Errorf("COMM_M1_TIMEOUT: %v", cfg.m1Timeout)
	}
	if cfg.httpAddr != defaultHTTP || cfg.queue != 256 || cfg.perSource != 16 {
		t.Errorf("defaults: %+v", cfg)
	}
}

// TestHelp: --help explains every flag and its environment variable, and
// how to listen on every interface.
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
	for _, w := range []string{"gateway health", "Example:", "/readyz", "SIGTERM", "0.0.0.0:7400", "comm_gateway_sends_total"} {
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
	bin := filepath.Join(t.TempDir(), "gateway")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	s := natstest.Start(t)
	stacktest.CreateStreams(t, s.Conn(t, natsauth.Keyserver))
	kf := writeKeys(t)
	stderr := &cmdtest.Log{}
	cmd := exec.Command(bin, "--nats", s.ClientURL(), "--nats-creds", s.CredsFile(natsauth.Gateway), "--http", "127.0.0.1:0", "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "COMM_KEY="+kf.gwKey, "COMM_KEYSERVER_PUB="+kf.ksPub, "COMM_LOG_FORMAT=json")
	cmd.Stderr = stderr
	cmdtest.Must(t, cmd.Start())
	defer cmd.Process.Kill()
	addr := stderr.Field(t, "http listening: /metrics /healthz /readyz", "addr")
	stderr.Field(t, "gateway ready", "level")
	if out, err := exec.Command(bin, "health", "--http", addr).CombinedOutput(); err != nil {
		t.Fatalf("gateway health: %v: %s", err, out)
	}
	cmdtest.Must(t, cmd.Process.Signal(syscall.SIGTERM))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	stderr.Field(t, "stopped cleanly", "level")
}
