package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol/keys"
)

// TestWrongKeyserverPub: with a --keyserver-pub that is not the
// keyserver's, no key bundle verifies. send, groups and listen fail and
// name the flag, say so once however many bundles came, and send does
// not fall back on the keys the state already holds.
func TestWrongKeyserverPub(t *testing.T) {
	w := newWorld(t)
	alice := w.client("alice", true)
	w.client("bob", true)
	g := w.group("ops", "alice", "bob")
	w.ok("send", "--key", alice, g, "with the right key") // the state holds epoch 1's key
	for range 3 {                                         // more bundles for the gateway to push
		_, err := w.s.Keyserver.Rekey(t.Context(), keyserver.Actor{}, "ops", "drill")
		must(t, err)
	}
	w.s.Sync()
	other, err := keys.GenerateSigningKey(nil)
	must(t, err)
	w.write("other.pub", keys.EncodePublicKey(keys.KindKeyserverPublic, other.Public()))
	wrong := w.path("other.pub")

	for _, args := range [][]string{
		{"send", "--key", alice, "--keyserver-pub", wrong, g, "hi"},
		{"groups", "--key", alice, "--keyserver-pub", wrong},
		{"listen", "--key", alice, "--keyserver-pub", wrong, "--for", "30s"},
	} {
		out, errOut, code := w.cli("", args...)
		t.Logf("commclient %s: exit %d\n%s", args[0], code, errOut)
		if code != 1 || !strings.Contains(errOut, "--keyserver-pub "+wrong) || strings.Contains(out, "accepted") {
			t.Errorf("commclient %s: exit %d, stdout %q, stderr %q; want exit 1 naming --keyserver-pub %s",
				args[0], code, out, errOut, wrong)
		}
		if n := strings.Count(errOut, "does not verify"); n > 1 {
			t.Errorf("commclient %s says %d times that a bundle does not verify:\n%s", args[0], n, errOut)
		}
	}
}

// TestGroupsAfterRemoval: once removed from a group, a client no longer
// lists it, although its state still holds the group's old keys.
func TestGroupsAfterRemoval(t *testing.T) {
	w := newWorld(t)
	alice := w.client("alice", true)
	w.client("bob", true)
	g := w.group("ops", "alice", "bob")
	if out := w.ok("groups", "--key", alice); !strings.Contains(out, g) {
		t.Fatalf("groups printed %q, want %s", out, g)
	}
	_, err := w.s.Keyserver.RemoveMembers(t.Context(), keyserver.Actor{}, "ops", []string{"alice"}, "left")
	must(t, err)
	w.s.Sync()
	if out := w.ok("groups", "--key", alice); strings.Contains(out, g) || !strings.Contains(out, "in no group") {
		t.Errorf("groups after the removal printed %q; want no %s", out, g)
	}
}

// TestSendNotMember: a send to a group the client is not in fails as soon
// as the gateway has told the client its groups, whether the client never
// had the group's key or still holds an old one: not after --key-wait,
// which here is longer than the test may take.
func TestSendNotMember(t *testing.T) {
	w := newWorld(t)
	alice, carol := w.client("alice", true), w.client("carol", true)
	w.client("bob", true)
	g := w.group("ops", "alice", "bob")
	w.ok("send", "--key", alice, g, "before") // alice's state holds the key
	_, err := w.s.Keyserver.RemoveMembers(t.Context(), keyserver.Actor{}, "ops", []string{"alice"}, "left")
	must(t, err)
	w.s.Sync()
	for name, key := range map[string]string{"carol, never a member": carol, "alice, removed": alice} {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		out, errOut, code := w.cliCtx(ctx, "", "send", "--key", key, "--key-wait", "1h", "--timeout", "1h", g, "hi")
		late := ctx.Err()
		cancel()
		if code != 1 || !strings.Contains(errOut, "not a member of "+g) || late != nil {
			t.Errorf("%s: exit %d, stdout %q, stderr %q, %v; want exit 1, not a member, at once", name, code, out, errOut, late)
		}
	}
}

// TestNoLockLeftBehind: no command leaves a STATE.lock file, whether it
// succeeded, was refused or was interrupted.
func TestNoLockLeftBehind(t *testing.T) {
	w := newWorld(t)
	alice, bob := w.client("alice", true), w.client("bob", true)
	mallory := w.client("mallory", false)
	g := w.group("ops", "alice", "bob")
	w.ok("send", "--key", alice, g, "hello")
	w.ok("groups", "--key", bob)
	w.ok("listen", "--key", bob, "--for", "1s")
	w.fails(1, "does not admit this client", "send", "--key", mallory, g, "hi")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() {
		_, _, code := w.cliCtx(ctx, "", "listen", "--key", alice)
		done <- code
	}()
	waitFor(t, func() bool { _, err := os.Stat(w.path("alice.state.lock")); return err == nil })
	cancel() // as Ctrl-C does
	if code := <-done; code != 0 {
		t.Errorf("listen interrupted: exit %d", code)
	}
	locks, err := filepath.Glob(w.path("*.lock"))
	must(t, err)
	if len(locks) > 0 {
		t.Errorf("lock files left behind: %v", locks)
	}
}

// cliCtx is cli under ctx.
func (w *world) cliCtx(ctx context.Context, stdin string, args ...string) (stdout, stderr string, code int) {
	var out, errOut strings.Builder
	code = run(ctx, args, func(k string) string { return w.env[k] }, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
