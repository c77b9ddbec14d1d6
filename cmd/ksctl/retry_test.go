package main

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/keyserver/admin"
)

// TestRetryAfterTimeout: the keyserver holds ksctl's rekey until ksctl,
// having had no answer within its --timeout, sends the same signed request
// again; the keyserver then runs the request once and answers the retry
// with its first outcome. ksctl says what happened, and the group moved
// one epoch. Before, ksctl gave up with "no answer from the keyserver"
// although the change was made.
func TestRetryAfterTimeout(t *testing.T) {
	retried := make(chan struct{})
	w := newWorldWith(t, func(c *keyserver.Config) {
		c.FaultHoldRequest = func(r *admin.Request) {
			if r.Op == admin.OpRekey {
				select {
				case <-retried:
				case <-t.Context().Done():
				}
			}
		}
	})
	// The second copy of a rekey request on its subject is ksctl's retry.
	// (A connection of its own: on the keyserver's, the copy would use up
	// the one answer the server allows to a request it delivered.)
	spy := w.srv.Conn(t, natsauth.Keyserver)
	var sent atomic.Int32
	_, err := spy.Subscribe(admin.Subject(admin.OpRekey), func(*nats.Msg) {
		if sent.Add(1) == 2 {
			close(retried)
		}
	})
	must(t, err)
	must(t, spy.Flush())
	path, _ := w.client("alice")
	w.ok("client", "register", path, "--name", "alice")
	w.ok("group", "create", "ops")
	w.ok("group", "add", "ops", "alice")

	out, errOut, code := w.ksctl("group", "rekey", "ops", "--timeout", "2s")
	t.Logf("stdout:\n%sstderr:\n%s", out, errOut)
	if code != 0 || !strings.Contains(out, "group ops: epoch 2 opened") {
		t.Fatalf("rekey: exit %d, stdout %q", code, out)
	}
	for _, want := range []string{
		"ksctl: no answer from the keyserver within 2s; sending the same signed request again (attempt 2 of 3)",
		"ksctl: the keyserver had already run this request; this is its first answer",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if n := sent.Load(); n != 2 {
		t.Errorf("%d attempts sent, want 2", n)
	}
	if g := w.group("ops"); g.Epoch != 2 {
		t.Fatalf("ops at epoch %d after one rekey, want 2", g.Epoch)
	}
}
