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

	"github.com/commsec/communicator/internal/cmdtest"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/keyserver/admin"
	"github.com/commsec/communicator/protocol/keys"
)

// keyFiles writes a keyserver key and an operator key pair as ksctl init
// does, the operator's public key in its own directory.
type keyFiles struct {
	dir, ksKey, opDir string
	operator          *keys.SigningKey
}

func writeKeys(t *testing.T) keyFiles {
	t.Helper()
	dir := t.TempDir()
	ks, _ := keys.GenerateSigningKey(nil)
	op, _ := keys.GenerateSigningKey(nil)
	f := keyFiles{dir: dir, ksKey: filepath.Join(dir, "keyserver.key"), opDir: filepath.Join(dir, "operators"), operator: op}
	cmdtest.Must(t, os.Mkdir(f.opDir, 0o700))
	cmdtest.Must(t, keys.WriteFile(f.ksKey, keys.EncodeSigningKey(keys.KindKeyserverPrivate, ks), false))
	cmdtest.Must(t, keys.WriteFile(filepath.Join(f.opDir, "alice.pub"), keys.EncodePublicKey(keys.KindOperatorPublic, op.Public()), false))
	return f
}

// checkRekey opens an epoch through the admin API and scrapes /metrics as
// Prometheus would: the Go runtime's and the process's metrics, and the
// rekey histogram with its buckets, holding that epoch.
func checkRekey(t *testing.T, addr string, op *admin.Client) {
	t.Helper()
	alice, _ := keys.GenerateClientIdentity(nil)
	for _, req := range []struct {
		op   string
		args admin.Args
	}{
		{admin.OpRegister, admin.Args{Client: keys.EncodeClientPublic(alice.Public()), Name: "alice"}},
		{admin.OpAdd, admin.Args{Group: "ops", Clients: []string{"alice"}}},
	} {
		if _, err := op.Do(t.Context(), req.op, req.args); err != nil {
			t.Fatalf("%s: %v", req.op, err)
		}
	}
	text, families := cmdtest.Scrape(t, "http://"+addr+"/metrics")
	cmdtest.CheckRuntime(t, families)
	if n := cmdtest.Observations(t, text, families, "comm_keyserver_rekey_duration_seconds"); n != 1 {
		t.Errorf("comm_keyserver_rekey_duration_seconds holds %d rekeys, want 1", n)
	}
}

// TestServe runs the command against a real NATS server over TLS (the CA
// from COMM_NATS_CA), with the key files from the environment and the rest
// from flags: it gets ready, answers the admin API, serves health and
// metrics, and shuts down cleanly when its context ends.
func TestServe(t *testing.T) {
	s := natstest.StartTLS(t)
	nc := s.Conn(t, natsauth.Admin) // ksctl's role
	kf := writeKeys(t)
	vars := map[string]string{"COMM_NATS_CA": s.CAFile, "COMM_KEY": kf.ksKey, "COMM_OPERATORS": kf.opDir, "COMM_HTTP": "127.0.0.1:1"}
	stderr := &cmdtest.Log{}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--nats", s.ClientURL(), "--nats-creds", s.CredsFile(natsauth.Keyserver), "--http", "127.0.0.1:0", "--log-format", "json", "--retention", "2d"}, cmdtest.Env(vars), io.Discard, stderr)
	}()
	addr := stderr.Field(t, "http listening: /metrics /healthz /readyz", "addr")
	if code, body := cmdtest.Get(t, "http://"+addr+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if code, body := cmdtest.Get(t, "http://"+addr+"/readyz"); code != 200 {
			return fmt.Errorf("readyz: %d %q", code, body)
		}
		return nil
	})
	if got := stderr.Field(t, "keyserver ready", "retention"); got != "2d" {
		t.Errorf("retention %q, want 2d", got)
	}
	if got := stderr.Field(t, "keyserver ready", "accepted_shards"); got != "4" {
		t.Errorf("accepted_shards %q, want the default 4", got)
	}
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"health", "--http", addr}, cmdtest.Env(nil), &out, &errOut); code != 0 {
		t.Errorf("health of a ready keyserver: exit %d, %s", code, errOut.String())
	}
	op := &admin.Client{NC: nc, Operator: kf.operator}
	if _, err := op.Do(t.Context(), admin.OpCreate, admin.Args{Name: "ops"}); err != nil {
		t.Fatal(err)
	}
	_, metricsText := cmdtest.Get(t, "http://"+addr+"/metrics")
	for _, want := range []string{
		"# TYPE comm_keyserver_events_appended_total counter\ncomm_keyserver_events_appended_total 1\n",
		"\ncomm_keyserver_admin_requests_total 1\n", "\ncomm_keyserver_groups 1\n", `comm_keyserver_info{version="1.0.0"} 1`, "\ncomm_keyserver_log_position 1\n",
	} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("metrics lack %q:\n%s", want, metricsText)
		}
	}
	checkRekey(t, addr, op)
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after cancel:\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no shutdown 15 s after cancel")
	}
	stderr.Field(t, "stopped cleanly", "level")
	if code := run(t.Context(), []string{"health", "--http", addr, "--timeout", "1s"}, cmdtest.Env(nil), &out, &errOut); code != 1 {
		t.Errorf("health after shutdown: exit %d, want 1", code)
	}
}

// TestNotReadyWithoutNATS: while NATS cannot be reached the keyserver is
// alive but not ready, and says why.
func TestNotReadyWithoutNATS(t *testing.T) {
	kf := writeKeys(t)
	stderr := &cmdtest.Log{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--nats", "nats://127.0.0.1:1", "--key", kf.ksKey, "--operators", kf.opDir,
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

// TestKeyFileErrors: a wrong, missing or exposed key file is refused with
// the flag that named it and the keys package's reason.
func TestKeyFileErrors(t *testing.T) {
	kf := writeKeys(t)
	opPub := filepath.Join(kf.opDir, "alice.pub")
	loose := filepath.Join(kf.dir, "loose.key")
	data, _ := os.ReadFile(kf.ksKey)
	cmdtest.Must(t, os.WriteFile(loose, data, 0o644))
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"missing key", []string{"--key", filepath.Join(kf.dir, "nope.key"), "--operators", kf.opDir}, []string{"--key", "no such file"}},
		{"operator key as keyserver key", []string{"--key", opPub, "--operators", kf.opDir}, []string{"--key", "want a keyserver key (private)", "operator public key"}},
		{"readable by others", []string{"--key", loose, "--operators", kf.opDir}, []string{"--key", "0644"}},
		{"keyserver key as operator key", []string{"--key", kf.ksKey, "--operator", kf.ksKey}, []string{"--operator", "want a operator public key"}},
		{"empty operators dir", []string{"--key", kf.ksKey, "--operators", t.TempDir()}, []string{"--operators", "no *.pub"}},
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
	kf := writeKeys(t)
	cases := []struct {
		args []string
		vars map[string]string
		want string
	}{
		{nil, nil, "--key is required"},
		{[]string{"--key", kf.ksKey}, nil, "no operator keys"},
		{[]string{"--bogus"}, nil, "flag provided but not defined"},
		{[]string{"--key", kf.ksKey, "--operators", kf.opDir, "--replicas", "0"}, nil, "--replicas 0"},
		{[]string{"--key", kf.ksKey, "--operators", kf.opDir, "--accepted-shards", "3"}, nil, "--accepted-shards 3"},
		{[]string{"--key", kf.ksKey, "--operators", kf.opDir}, map[string]string{"COMM_ACCEPTED_SHARDS": "32"}, "--accepted-shards 32"},
		{[]string{"--key", kf.ksKey, "--operators", kf.opDir}, map[string]string{"COMM_RETENTION": "a week"}, "COMM_RETENTION"},
		{[]string{"--key", kf.ksKey, "--operators", kf.opDir, "--nats", "http://x:1"}, nil, "--nats"},
		{[]string{"--key", kf.ksKey, "--operators", kf.opDir, "--log-format", "xml"}, nil, "log format"},
		{[]string{"extra"}, nil, `unexpected argument "extra"`},
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
	vars := map[string]string{"COMM_HTTP": "127.0.0.1:7000", "COMM_KEY": "env.key", "COMM_OPERATOR": "a.pub,b.pub", "COMM_REPLICAS": "3"}
	cfg, err := parseFlags([]string{"--http", "127.0.0.1:8000", "--operator", "c.pub"}, cmdtest.Env(vars))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.httpAddr != "127.0.0.1:8000" || cfg.keyFile != "env.key" || cfg.replicas != 3 || cfg.operatorFiles.String() != "c.pub" {
		t.Errorf("got %+v", cfg)
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
	for _, w := range []string{"keyserver health", "Example:", "/readyz", "SIGTERM"} {
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
	bin := filepath.Join(t.TempDir(), "keyserver")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	s := natstest.Start(t)
	kf := writeKeys(t)
	stderr := &cmdtest.Log{}
	cmd := exec.Command(bin, "--nats", s.ClientURL(), "--nats-creds", s.CredsFile(natsauth.Keyserver), "--http", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "COMM_KEY="+kf.ksKey, "COMM_OPERATORS="+kf.opDir, "COMM_LOG_FORMAT=json")
	cmd.Stderr = stderr
	cmdtest.Must(t, cmd.Start())
	defer cmd.Process.Kill()
	addr := stderr.Field(t, "http listening: /metrics /healthz /readyz", "addr")
	stderr.Field(t, "keyserver ready", "level")
	if out, err := exec.Command(bin, "health", "--http", addr).CombinedOutput(); err != nil {
		t.Fatalf("keyserver health: %v: %s", err, out)
	}
	cmdtest.Must(t, cmd.Process.Signal(syscall.SIGTERM))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	stderr.Field(t, "stopped cleanly", "level")
}
