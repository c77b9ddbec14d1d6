package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol/keys"
)

// world is a NATS server with a keyserver started from the keys that
// `ksctl init` made.
type world struct {
	t   *testing.T
	srv *natstest.Server
	url string
	nc  *nats.Conn // the keyserver's
	dir string
	k   *keyserver.Keyserver
}

func newWorld(t *testing.T) *world {
	t.Helper()
	return newWorldOn(t, natstest.Start(t), nil)
}

// newWorldWith is newWorld with the keyserver's configuration changed by
// configure (if not nil).
func newWorldWith(t *testing.T, configure func(*keyserver.Config)) *world {
	t.Helper()
	return newWorldOn(t, natstest.Start(t), configure)
}

// newWorldOn is newWorld on a server of the caller's (natstest.StartTLS),
// with the keyserver's configuration changed by configure (if not nil).
func newWorldOn(t *testing.T, s *natstest.Server, configure func(*keyserver.Config)) *world {
	t.Helper()
	nc := s.Conn(t, natsauth.Keyserver)
	w := &world{t: t, srv: s, url: s.ClientURL(), nc: nc, dir: t.TempDir()}
	w.ok("init", "--dir", w.dir)
	ks, err := keys.DecodeSigningKey(w.read("keyserver.key"), keys.KindKeyserverPrivate)
	must(t, err)
	op, err := keys.DecodePublicKey(w.read("operator.pub"), keys.KindOperatorPublic)
	must(t, err)
	cfg := keyserver.Config{Key: ks, Operators: [][32]byte{op}}
	if configure != nil {
		configure(&cfg)
	}
	w.k, err = keyserver.Start(t.Context(), nc, cfg)
	must(t, err)
	t.Cleanup(w.k.Close)
	svc, err := w.k.Serve(nc)
	must(t, err)
	t.Cleanup(func() { svc.Stop() })
	must(t, nc.Flush()) // the admin API is subscribed before ksctl's own connection asks
	return w
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (w *world) read(name string) []byte {
	w.t.Helper()
	data, err := keys.ReadFile(filepath.Join(w.dir, name))
	must(w.t, err)
	return data
}

// env is what an operator's shell would export.
func (w *world) env() map[string]string {
	return map[string]string{"COMM_NATS_URL": w.url, "COMM_NATS_CREDS": w.srv.CredsFile(natsauth.Admin),
		"COMM_OPERATOR_KEY":  filepath.Join(w.dir, "operator.key"),
		"COMM_KEYSERVER_PUB": filepath.Join(w.dir, "keyserver.pub")}
}

// ksctl runs the command with w's environment.
func (w *world) ksctl(args ...string) (stdout, stderr string, code int) {
	return runWith(w.t, w.env(), args...)
}

func runWith(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), code
}

// ok runs a command that must succeed and returns its output.
func (w *world) ok(args ...string) string {
	w.t.Helper()
	out, errOut, code := w.ksctl(args...)
	if code != 0 {
		w.t.Fatalf("ksctl %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// fails runs a command that must exit with code and mention want on stderr.
func (w *world) fails(code int, want string, args ...string) {
	w.t.Helper()
	out, errOut, got := w.ksctl(args...)
	if got != code || !strings.Contains(errOut, want) {
		w.t.Errorf("ksctl %s: exit %d, stderr %q (stdout %q); want exit %d and %q", strings.Join(args, " "), got, errOut, out, code, want)
	}
}

// client writes a new client's public key file and returns its path.
func (w *world) client(name string) (string, *keys.ClientIdentity) {
	w.t.Helper()
	id, err := keys.GenerateClientIdentity(nil)
	must(w.t, err)
	path := filepath.Join(w.dir, name+".pub")
	must(w.t, keys.WriteFile(path, keys.EncodeClientPublic(id.Public()), false))
	return path, id
}

func (w *world) group(name string) *fold.Group {
	var g *fold.Group
	w.k.Projection().Read(func(s *fold.State) {
		if found, ok := s.GroupByName(name); ok {
			c := *found
			g = &c
		}
	})
	return g
}

func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	out, errOut, code := runWith(t, nil, "init", "--dir", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	kinds := map[string]keys.Kind{"operator.key": keys.KindOperatorPrivate, "operator.pub": keys.KindOperatorPublic,
		"keyserver.key": keys.KindKeyserverPrivate, "keyserver.pub": keys.KindKeyserverPublic,
		"gateway.key": keys.KindServerPrivate, "gateway.pub": keys.KindServerPublic}
	before := map[string][]byte{}
	for name, kind := range kinds {
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path)
		must(t, err)
		if want := map[bool]os.FileMode{true: 0o600, false: 0o644}[kind.Private()]; fi.Mode().Perm() != want {
			t.Errorf("%s: mode %04o, want %04o", name, fi.Mode().Perm(), want)
		}
		data, err := keys.ReadFile(path)
		must(t, err)
		if _, err := keys.DecodeKind(data, kind); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		before[name] = data
		if !kind.Private() && !strings.Contains(out, fmt.Sprintf("%x", data[6:38])) {
			t.Errorf("output lacks the public key of %s:\n%s", name, out)
		}
	}
	if !strings.Contains(out, "Next steps") {
		t.Errorf("no next steps:\n%s", out)
	}
	t.Logf("\n%s", out)
	_, errOut, code = runWith(t, nil, "init", "--dir", dir)
	if code != 1 || !strings.Contains(errOut, "refusing to overwrite") {
		t.Errorf("second init: exit %d %q", code, errOut)
	}
	for name, data := range before {
		if now, _ := os.ReadFile(filepath.Join(dir, name)); !bytes.Equal(now, data) {
			t.Errorf("%s changed by a refused init", name)
		}
	}
	if _, errOut, code = runWith(t, nil, "init", "--dir", dir, "--force"); code != 0 {
		t.Fatalf("init --force: exit %d %s", code, errOut)
	}
	if now, _ := os.ReadFile(filepath.Join(dir, "operator.key")); bytes.Equal(now, before["operator.key"]) {
		t.Error("init --force kept the old operator key")
	}
}

// TestManage drives the admin commands end to end and checks the
// keyserver's state after each.
func TestManage(t *testing.T) {
	w := newWorld(t)
	for _, n := range []string{"alice", "bob", "carol"} {
		path, id := w.client(n)
		if out := w.ok("client", "register", path, "--name", n); !strings.Contains(out, "registered client "+n) || !strings.Contains(out, id.ID().String()) {
			t.Errorf("register: %q", out)
		}
	}
	if out := w.ok("group", "create", "ops", "--max-messages", "1000", "--max-age", "1d"); !strings.Contains(out, "created group ops") {
		t.Errorf("create: %q", out)
	}
	if out := w.ok("group", "add", "ops", "alice", "bob", "carol"); !strings.Contains(out, "epoch 1 opened, alice, bob, carol added") {
		t.Errorf("add: %q", out)
	}
	w.ok("group", "remove", "ops", "carol", "--reason", "left the team")
	if out := w.ok("group", "rekey", "--reason", "drill", "ops"); !strings.Contains(out, "epoch 3 opened") {
		t.Errorf("rekey: %q", out)
	}
	g := w.group("ops")
	if g == nil || g.Epoch != 3 || len(g.Members) != 2 || g.Policy.MaxMessages != 1000 || g.Policy.MaxAge.Hours() != 24 {
		t.Fatalf("group after the commands: %+v", g)
	}
	out := w.ok("list")
	t.Logf("\n%s", out)
	for _, want := range []string{"CLIENTS (3)", "GROUPS (1)", "carol  active", "1000 msgs, 1d", "alice, bob"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q", want)
		}
	}
	w.ok("client", "revoke", "bob", "--reason", "lost")
	var list struct {
		Clients []struct {
			Name    string `json:"name"`
			Revoked bool   `json:"revoked"`
		} `json:"clients"`
		Groups []struct {
			Name    string   `json:"name"`
			Epoch   int      `json:"epoch"`
			Members []string `json:"members"`
		} `json:"groups"`
	}
	must(t, json.Unmarshal([]byte(w.ok("list", "--json")), &list))
	if len(list.Groups) != 1 || list.Groups[0].Epoch != 4 || strings.Join(list.Groups[0].Members, ",") != "alice" || !list.Clients[1].Revoked {
		t.Errorf("list --json after revoking bob: %+v", list)
	}
	w.ok("group", "delete", "ops")
	if out := w.ok("list"); !strings.Contains(out, "GROUPS (0)") {
		t.Errorf("list after delete:\n%s", out)
	}
}

// TestErrors: refusals by the keyserver are printed as its message and
// exit 1; so are connection problems; usage errors exit 2.
func TestErrors(t *testing.T) {
	w := newWorld(t)
	path, _ := w.client("alice")
	w.ok("client", "register", path, "--name", "alice")
	w.ok("group", "create", "ops")
	w.fails(1, `keyserver: unknown client: "mallory"`, "group", "add", "ops", "mallory")
	w.fails(1, `keyserver: unknown group: "nope"`, "group", "add", "nope", "alice")
	w.fails(1, "keyserver: client already registered", "client", "register", path)
	w.fails(1, "keyserver: invalid name", "group", "create", "bad name")
	w.fails(1, "--operator-key", "--operator-key", filepath.Join(w.dir, "nope.key"), "list")
	w.fails(1, "want a operator key (private)", "--operator-key", filepath.Join(w.dir, "keyserver.key"), "list")
	stranger := t.TempDir()
	runWith(t, nil, "init", "--dir", stranger)
	w.fails(1, "keyserver: unauthorized: operator key", "--operator-key", filepath.Join(stranger, "operator.key"), "list")
	w.fails(1, "cannot connect to NATS at nats://127.0.0.1:1", "--nats", "nats://127.0.0.1:1", "--timeout", "1s", "list")
	lonely := natstest.Start(t)
	w.fails(1, "no keyserver answers", "--nats", lonely.ClientURL(), "--nats-creds", lonely.CredsFile(natsauth.Admin), "list")

	w.fails(2, "missing arguments", "group", "add", "ops")
	w.fails(2, `unexpected argument "x"`, "group", "delete", "ops", "x")
	w.fails(2, "flag provided but not defined: -bogus", "list", "--bogus")
	w.fails(2, `unknown command "frobnicate"`, "frobnicate")
	w.fails(2, "ksctl group add", "group")
	w.fails(2, "flag provided but not defined", "--bogus")
}

// TestTLS: with --nats-ca (or COMM_NATS_CA) ksctl reaches a server that
// requires TLS; of several comma-separated URLs, a dead first one is
// skipped.
func TestTLS(t *testing.T) {
	w := newWorldOn(t, natstest.StartTLS(t), nil)
	w.ok("--nats-ca", w.srv.CAFile, "group", "create", "ops")
	env := w.env()
	env["COMM_NATS_CA"] = w.srv.CAFile
	env["COMM_NATS_URL"] = "nats://127.0.0.1:1," + w.url
	if out, errOut, code := runWith(t, env, "list"); code != 0 || !strings.Contains(out, "GROUPS (1)") {
		t.Errorf("list with COMM_NATS_CA and a dead first URL: exit %d\n%s%s", code, out, errOut)
	}
	w.fails(1, "--nats-ca "+w.srv.CredsFile(natsauth.Admin)+": no PEM certificate", "--nats-ca", w.srv.CredsFile(natsauth.Admin), "list")
	w.fails(1, "give the deployment's CA with --nats-ca FILE (or COMM_NATS_CA): deploy/secrets/nats/ca.pem", "list")
	other := natstest.StartTLS(t)
	w.fails(1, "not signed by the CA in "+other.CAFile, "--nats-ca", other.CAFile, "list")
	plain := natstest.Start(t)
	w.fails(1, "the server does not offer TLS, which --nats-ca asks for", "--nats", plain.ClientURL(), "--nats-ca", w.srv.CAFile, "list")
}

// TestNATSRefusals: without credentials, with another deployment's, or
// with a role's that may not do what the command does, ksctl says what to
// pass, at once rather than after --timeout.
func TestNATSRefusals(t *testing.T) {
	w := newWorld(t)
	env := w.env()
	delete(env, "COMM_NATS_CREDS")
	out, errOut, code := runWith(t, env, "list")
	for _, want := range []string{"Authorization Violation", "give --nats-creds FILE", "DATA/creds/admin.nk for commstack", "deploy/secrets/nats/admin.nk for docker compose"} {
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("list without credentials: exit %d, stderr %q lacks %q (stdout %q)", code, errOut, want, out)
		}
	}
	_, errOut, _ = runWith(t, env, "audit", "ops")
	if !strings.Contains(errOut, "deploy/secrets/nats/auditor.nk") {
		t.Errorf("audit without credentials names not the auditor's seed: %q", errOut)
	}
	stranger := natstest.Start(t)
	w.fails(1, "the server does not know the credentials in "+stranger.CredsFile(natsauth.Admin), "--nats-creds", stranger.CredsFile(natsauth.Admin), "list")

	for _, c := range []struct {
		role natsauth.Role
		args []string
		want string
	}{
		{natsauth.Auditor, []string{"list"}, "this command needs the admin user's nkey seed (admin.nk"},
		{natsauth.Auditor, []string{"group", "create", "ops"}, "this command needs the admin user's nkey seed"},
		{natsauth.Admin, []string{"audit", "ops"}, "this command needs the auditor user's nkey seed (auditor.nk"},
	} {
		start := time.Now()
		args := append([]string{"--nats-creds", w.srv.CredsFile(c.role)}, c.args...)
		w.fails(1, "NATS refused it: nats: permissions violation", args...)
		w.fails(1, c.want, args...)
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("%s as %s took %v: it waited for the timeout", strings.Join(c.args, " "), c.role, took)
		}
	}
}

func TestHelp(t *testing.T) {
	out, _, code := runWith(t, nil, "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, c := range commands() {
		if !strings.Contains(out, "  "+c.name+" ") || !strings.Contains(out, c.summary) {
			t.Errorf("ksctl --help lacks %q", c.name)
		}
	}
	for _, want := range []string{"Example session:", "COMM_NATS_URL", "COMM_OPERATOR_KEY", "Exit status"} {
		if !strings.Contains(out, want) {
			t.Errorf("ksctl --help lacks %q", want)
		}
	}
	if out, _, code := runWith(t, nil, "group", "--help"); code != 0 || !strings.Contains(out, "ksctl group remove") {
		t.Errorf("group --help: exit %d %q", code, out)
	}
	for _, c := range commands() {
		out, _, code := runWith(t, nil, append(strings.Fields(c.name), "--help")...)
		if code != 0 || !strings.HasPrefix(out, "Usage: ksctl "+c.name) {
			t.Errorf("%s --help: exit %d %q", c.name, code, out)
		}
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		c.setup(fs)
		fs.VisitAll(func(f *flag.Flag) {
			if !isGlobal[f.Name] && !strings.Contains(out, "--"+f.Name) {
				t.Errorf("%s --help lacks --%s", c.name, f.Name)
			}
		})
	}
}

// TestProgress: a redrawn bar on a terminal, a line per tenth otherwise.
func TestProgress(t *testing.T) {
	var b bytes.Buffer
	p := &progress{w: &b, tty: true}
	p.update(12345, 100000)
	p.finish()
	if want := "\rreplaying events 12345/100000 [===>                          ] 12%\n"; b.String() != want {
		t.Errorf("terminal: %q, want %q", b.String(), want)
	}
	b.Reset()
	p = &progress{w: &b}
	for done := uint64(0); done <= 100000; done += 1024 {
		p.update(done, 100000)
	}
	p.update(100000, 100000)
	p.finish()
	if lines := strings.Count(b.String(), "\n"); lines != 11 || !strings.HasSuffix(b.String(), "replaying events 100000/100000 100%\n") {
		t.Errorf("%d lines:\n%s", lines, b.String())
	}
}
