package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/internal/stacktest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/relay"
)

// world is a whole stack (real NATS, keyserver, relay, gateway on
// loopback TCP) and a directory holding the files a person would have.
type world struct {
	t   *testing.T
	s   *stacktest.Stack
	dir string
	env map[string]string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	s := stacktest.New(t)
	s.AddRelay(relay.Config{})
	s.AddGateway(gateway.Config{})
	w := &world{t: t, s: s, dir: t.TempDir()}
	w.write("gateway.pub", keys.EncodePublicKey(keys.KindServerPublic, s.GW.Public()))
	w.write("keyserver.pub", keys.EncodePublicKey(keys.KindKeyserverPublic, s.KS.Public()))
	w.env = map[string]string{
		"COMM_GATEWAY":       s.Gateways[0].Addr().String(),
		"COMM_SERVER_PUB":    w.path("gateway.pub"),
		"COMM_KEYSERVER_PUB": w.path("keyserver.pub"),
	}
	return w
}

func (w *world) path(name string) string { return filepath.Join(w.dir, name) }

func (w *world) write(name string, data []byte) {
	w.t.Helper()
	if err := os.WriteFile(w.path(name), data, 0o644); err != nil {
		w.t.Fatal(err)
	}
}

// cli runs commclient with w's environment and stdin.
func (w *world) cli(stdin string, args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	code = run(w.t.Context(), args, func(k string) string { return w.env[k] }, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

// ok runs a command that must succeed and returns its stdout.
func (w *world) ok(args ...string) string {
	w.t.Helper()
	out, errOut, code := w.cli("", args...)
	if code != 0 {
		w.t.Fatalf("commclient %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// fails runs a command that must exit with code and say want on stderr.
func (w *world) fails(code int, want string, args ...string) {
	w.t.Helper()
	out, errOut, got := w.cli("", args...)
	if got != code || !strings.Contains(errOut, want) {
		w.t.Errorf("commclient %s: exit %d, stderr %q (stdout %q); want exit %d and %q",
			strings.Join(args, " "), got, errOut, out, code, want)
	}
}

// client makes a client with keygen and, if register, registers its
// public file through the keyserver's Go API, as 'ksctl client register'
// would. It returns the path of its key file.
func (w *world) client(name string, register bool) string {
	w.t.Helper()
	w.ok("keygen", "--out", w.path(name))
	if !register {
		return w.path(name + ".key")
	}
	data, err := keys.ReadFile(w.path(name + ".pub"))
	must(w.t, err)
	pub, err := keys.DecodeClientPublic(data)
	must(w.t, err)
	must(w.t, w.s.Keyserver.RegisterClient(w.t.Context(), keyserver.Actor{}, pub, name))
	w.s.Sync()
	return w.path(name + ".key")
}

// group creates a group of the named clients and returns its hex id.
func (w *world) group(name string, members ...string) string {
	w.t.Helper()
	g, err := w.s.Keyserver.CreateGroup(w.t.Context(), keyserver.Actor{}, name, record.Policy{})
	must(w.t, err)
	_, err = w.s.Keyserver.AddMembers(w.t.Context(), keyserver.Actor{}, name, members)
	must(w.t, err)
	w.s.Sync()
	return g.String()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// listenAsync runs listen in the background; the returned channel yields
// its stdout once it exits (successfully, or the test fails).
func (w *world) listenAsync(args ...string) <-chan string {
	done := make(chan string, 1)
	go func() {
		out, errOut, code := w.cli("", append([]string{"listen", "--for", "30s"}, args...)...)
		if code != 0 {
			w.t.Errorf("listen: exit %d: %s", code, errOut)
		}
		done <- out
	}()
	return done
}

func TestKeygen(t *testing.T) {
	w := &world{t: t, dir: t.TempDir()}
	out := w.ok("keygen", "--out", w.path("alice"))
	data, err := keys.ReadFile(w.path("alice.pub"))
	must(t, err)
	pub, err := keys.DecodeClientPublic(data)
	must(t, err)
	if !strings.Contains(out, "client id "+pub.ID.String()) || !strings.Contains(out, "ksctl client register") {
		t.Errorf("keygen printed %q; want the client id %s and the ksctl step", out, pub.ID)
	}
	fi, err := os.Stat(w.path("alice.key"))
	must(t, err)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("alice.key has mode %04o, want 0600", fi.Mode().Perm())
	}
	w.fails(1, "refusing to overwrite", "keygen", "--out", w.path("alice"))
	w.ok("keygen", "--out", w.path("alice"), "--force")
	w.fails(2, "--out PREFIX is required", "keygen")
}

func TestHelp(t *testing.T) {
	w := &world{t: t}
	for _, args := range [][]string{{"--help"}, {"keygen", "--help"}, {"send", "-h"}, {"listen", "--help"}, {"groups", "--help"}} {
		if out := w.ok(args...); !strings.Contains(out, "Usage") {
			t.Errorf("commclient %s printed %q", strings.Join(args, " "), out)
		}
	}
	w.fails(2, "unknown command", "frobnicate")
}

// TestSendListen sends from one client's CLI to another's, and sends
// again from the same state file: a restarted sender never reuses a
// counter, so the relay accepts every send.
func TestSendListen(t *testing.T) {
	w := newWorld(t)
	alice, bob := w.client("alice", true), w.client("bob", true)
	g := w.group("ops", "alice", "bob")

	heard := w.listenAsync("--key", bob, "--count", "1")
	if out := w.ok("send", "--key", alice, g, "hello", "bob"); out != "accepted\n" {
		t.Fatalf("send printed %q, want accepted", out)
	}
	if out := <-heard; !strings.Contains(out, g) || !strings.Contains(out, "hello bob") {
		t.Fatalf("listen printed %q; want the message in group %s", out, g)
	}

	w.ok("send", "--key", alice, g, "second")
	if out, errOut, code := w.cli("binary\x00\n", "send", "--key", alice, g, "-"); code != 0 || out != "accepted\n" {
		t.Fatalf("send from stdin: exit %d, %q %q", code, out, errOut)
	}
	msgs := decodeJSON(t, <-w.listenAsync("--key", bob, "--count", "2", "--json"))
	if len(msgs) != 2 || *msgs[0].Text != "second" || msgs[1].Text != nil || msgs[1].Hex != "62696e61727900" {
		t.Fatalf("listen --json got %+v", msgs)
	}
	if msgs[1].Counter <= msgs[0].Counter {
		t.Errorf("counters %d then %d: a restarted sender reused or lowered its counter", msgs[0].Counter, msgs[1].Counter)
	}
}

func decodeJSON(t *testing.T, out string) []jsonMessage {
	t.Helper()
	var msgs []jsonMessage
	for line := range strings.Lines(out) {
		var m jsonMessage
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func TestGroups(t *testing.T) {
	w := newWorld(t)
	alice := w.client("alice", true)
	w.client("bob", true)
	g := w.group("ops", "alice", "bob")
	if out := w.ok("groups", "--key", alice); !strings.Contains(out, g+"  epoch 1") {
		t.Errorf("groups printed %q, want %s at epoch 1", out, g)
	}
}

// TestErrors checks that each usual mistake is told as such.
func TestErrors(t *testing.T) {
	w := newWorld(t)
	alice, bob := w.client("alice", true), w.client("bob", true)
	carol := w.client("carol", true)
	mallory := w.client("mallory", false)
	g := w.group("ops", "alice", "bob")
	other := protocol.GroupID{1}.String()

	w.fails(1, "does not admit this client", "send", "--key", mallory, g, "hi")
	w.fails(1, "not a member of "+g+"; your groups: none", "send", "--key", carol, g, "hi")
	w.fails(1, "not a member of "+other+"; your groups: "+g, "send", "--key", alice, other, "hi")
	w.fails(2, "want the 32-hex-digit group id", "send", "--key", alice, "ops", "hi")
	w.fails(2, "--key is required", "send", g, "hi")
	w.fails(1, "no such file", "send", "--key", w.path("nobody.key"), g, "hi")
	w.fails(1, "want a client identity", "send", "--key", w.path("alice.pub"), g, "hi")
	w.fails(1, "want a server public key", "send", "--key", alice, "--server-pub", w.path("keyserver.pub"), g, "hi")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	closed := ln.Addr().String()
	ln.Close()
	w.fails(1, "cannot reach the gateway at "+closed, "send", "--key", alice, "--gateway", closed, g, "hi")

	natsAddr := strings.TrimPrefix(w.s.NATS.ClientURL(), "nats://")
	w.fails(1, "does not speak this client's protocol", "send", "--key", alice, "--gateway", natsAddr, g, "hi")

	wrong, err := keys.GenerateSigningKey(nil)
	must(t, err)
	w.write("wrong.pub", keys.EncodePublicKey(keys.KindServerPublic, wrong.Public()))
	w.fails(1, "is not the gateway of --server-pub", "send", "--key", alice, "--server-pub", w.path("wrong.pub"), g, "hi")

	unlock, err := lockState(w.path("bob.state")) // as a running listen holds it
	must(t, err)
	w.fails(1, "in use by another running commclient", "groups", "--key", bob)
	unlock()
	w.ok("groups", "--key", bob)
}
