package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/commsec/communicator/internal/cmdtest"
	"github.com/commsec/communicator/internal/service"
)

const httpLine = "http listening: /metrics /healthz /readyz"

// TestServe runs the stack with the data directory from the environment:
// it logs where everything is, serves the metrics of all three services
// (their histograms, and the process's go_* and process_* metrics once),
// lets the nats CLI in on loopback, and stops cleanly.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	stderr := &cmdtest.Log{}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan int, 1)
	args := []string{"--gateway", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--log-format", "json"}
	go func() {
		done <- run(ctx, args, cmdtest.Env(map[string]string{"COMM_DATA": dir, "COMM_SYNC": "2s"}), io.Discard, stderr)
	}()
	stderr.Field(t, "stack ready", "level")
	addr := stderr.Field(t, httpLine, "addr")
	if got := stderr.Field(t, "data directory", "fsync"); got != "every 2s" {
		t.Errorf("fsync %q, want every 2s (COMM_SYNC)", got)
	}
	if got := stderr.Field(t, "key files", "operator_key"); got != filepath.Join(dir, "keys", "operator.key") {
		t.Errorf("operator key at %q", got)
	}
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"health", "--http", addr}, cmdtest.Env(nil), &out, &errOut); code != 0 {
		t.Errorf("health: exit %d %s", code, errOut.String())
	}
	text, families := cmdtest.Scrape(t, "http://"+addr+"/metrics")
	for _, want := range []string{"\ncomm_keyserver_clients 0\n", "\ncomm_relay_partitions_owned 64\n", "\ncomm_gateway_connections 0\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	cmdtest.CheckRuntime(t, families)
	for _, h := range []string{"comm_gateway_handshake_duration_seconds", "comm_gateway_send_verdict_seconds", "comm_gateway_delivery_lag_seconds",
		"comm_relay_decision_seconds", "comm_relay_store_write_seconds", "comm_keyserver_rekey_duration_seconds"} {
		cmdtest.Observations(t, text, families, h)
	}
	const listening = "NATS listening on loopback for ksctl and the nats CLI; every connection authenticates (nkey files 0600)"
	url := stderr.Field(t, listening, "url")
	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatalf("NATS at %s accepted a connection without credentials", url)
	}
	opts, err := service.NATSClient{Creds: stderr.Field(t, listening, "creds") + "/admin.nk"}.Options("ksctl")
	cmdtest.Must(t, err)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("NATS at %s with the admin's credentials: %v", url, err)
	}
	nc.Close()
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no shutdown 20 s after cancel")
	}
	stderr.Field(t, "stopped cleanly", "level")
}

// TestStartErrors: a stack that cannot start exits 1 with the reason.
func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	cmdtest.Must(t, os.MkdirAll(filepath.Join(dir, "keys"), 0o700))
	cmdtest.Must(t, os.WriteFile(filepath.Join(dir, "keys", "gateway.pub"), []byte("x"), 0o644))
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--data", t.TempDir(), "--nats-listen", "0.0.0.0:4222"}, "not loopback"},
		{[]string{"--data", dir, "--nats-listen", "none"}, "gateway.key does not"},
	}
	for _, c := range cases {
		var stderr bytes.Buffer
		args := append(c.args, "--gateway", "127.0.0.1:0", "--http", "127.0.0.1:0", "--log-format", "json")
		if code := run(t.Context(), args, cmdtest.Env(nil), io.Discard, &stderr); code != 1 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: exit %d %q, want 1 and %q", c.args, code, stderr.String(), c.want)
		}
	}
}

func TestUsage(t *testing.T) {
	cases := []struct {
		args []string
		vars map[string]string
		want string
	}{
		{[]string{"--sync", "sometimes"}, nil, "want always or a positive interval"},
		{[]string{"--sync", "0s"}, nil, "want always or a positive interval"},
		{nil, map[string]string{"COMM_SYNC": "never"}, "COMM_SYNC"},
		{[]string{"--data", ""}, nil, "--data must name a directory"},
		{[]string{"--accepted-shards", "5"}, nil, "--accepted-shards 5"},
		{nil, map[string]string{"COMM_ACCEPTED_SHARDS": "-1"}, "--accepted-shards -1"},
		{[]string{"--bogus"}, nil, "flag provided but not defined"},
		{[]string{"run"}, nil, `unexpected argument "run"`},
		{[]string{"--log-format", "xml"}, nil, "log format"},
		{[]string{"demo", "now"}, nil, `unexpected argument "now"`},
		{[]string{"demo", "--log-level", "loud"}, nil, "log level"},
		{[]string{"health", "--bogus"}, nil, "flag provided but not defined"},
	}
	for _, c := range cases {
		var stderr bytes.Buffer
		if code := run(t.Context(), c.args, cmdtest.Env(c.vars), io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: exit %d %q, want 2 and %q", c.args, code, stderr.String(), c.want)
		}
	}
}

// TestFlags: a flag beats its variable, the variable the default; "none"
// turns the NATS listener off.
func TestFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"--gateway", "0.0.0.0:7400", "--nats-listen", "none"},
		cmdtest.Env(map[string]string{"COMM_GATEWAY": "127.0.0.1:1", "COMM_HTTP": "127.0.0.1:9999", "COMM_SYNC": "1m"}))
	cmdtest.Must(t, err)
	s := cfg.stack
	if s.Gateway != "0.0.0.0:7400" || s.NATSListen != "" || s.HTTP != "127.0.0.1:9999" || s.SyncInterval != time.Minute || s.DataDir != "data" {
		t.Errorf("got %+v", s)
	}
	cfg, err = parseFlags(nil, cmdtest.Env(nil))
	cmdtest.Must(t, err)
	if cfg.stack.NATSListen != "127.0.0.1:4222" || cfg.stack.SyncInterval != 0 || cfg.sync.String() != "always" {
		t.Errorf("defaults %+v", cfg.stack)
	}
}

// TestHelp: --help explains both modes, every flag and its environment
// variable.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"demo", "--help"}} {
		var stdout bytes.Buffer
		if code := run(t.Context(), args, cmdtest.Env(nil), &stdout, io.Discard); code != 0 {
			t.Fatalf("%v: exit %d", args, code)
		}
		newFlagSet(&config{}).VisitAll(func(f *flag.Flag) {
			for _, w := range []string{"--" + f.Name + " ", "[" + envVars[f.Name] + "]"} {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("help lacks %q", w)
				}
			}
		})
		for _, w := range []string{"commstack demo [--data DIR]", "commstack health", "0.0.0.0:7400", "ksctl --nats", "--keyserver-pub data/keys/keyserver.pub", "SIGTERM"} {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("help lacks %q", w)
			}
		}
	}
}

// TestBinarySIGTERM builds the real binary, runs the stack until it is
// ready and stops it with SIGTERM: it exits 0 after a graceful shutdown.
func TestBinarySIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "commstack")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	stderr := &cmdtest.Log{}
	cmd := exec.Command(bin, "--data", t.TempDir(), "--gateway", "127.0.0.1:0", "--nats-listen", "", "--http", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "COMM_LOG_FORMAT=json")
	cmd.Stderr = stderr
	cmdtest.Must(t, cmd.Start())
	defer cmd.Process.Kill()
	addr := stderr.Field(t, httpLine, "addr")
	stderr.Field(t, "stack ready", "level")
	if out, err := exec.Command(bin, "health", "--http", addr).CombinedOutput(); err != nil {
		t.Fatalf("commstack health: %v: %s", err, out)
	}
	cmdtest.Must(t, cmd.Process.Signal(syscall.SIGTERM))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	stderr.Field(t, "stopped cleanly", "level")
}
