package cmdtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/commsec/communicator/internal/natstest"
)

// Run is a service binary's run: its arguments, environment, standard
// output and standard error in; its exit code out.
type Run func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int

// CheckWaitingForNATS checks a service serving HTTP on addr that cannot
// reach NATS: /healthz answers 200, for it is alive, and /readyz 503
// naming NATS.
func CheckWaitingForNATS(t *testing.T, addr string) {
	t.Helper()
	if code, _ := Get(t, "http://"+addr+"/healthz"); code != 200 {
		t.Errorf("healthz %d", code)
	}
	if code, body := Get(t, "http://"+addr+"/readyz"); code != 503 || !strings.Contains(body, "NATS") {
		t.Errorf("readyz: %d %q, want 503 naming NATS", code, body)
	}
}

// CheckJetStreamLoss checks a service named name, ready and serving
// HTTP on addr, through the loss of JetStream: `health` passes before;
// once lose has taken JetStream away, /readyz answers 503 naming
// JetStream (within 20 s), `health` exits 1 naming JetStream, and
// /healthz still answers 200, for the service is alive.
func CheckJetStreamLoss(t *testing.T, run Run, name, addr string, lose func() error) {
	t.Helper()
	var errOut bytes.Buffer
	if code := run(t.Context(), []string{"health", "--http", addr}, Env(nil), io.Discard, &errOut); code != 0 {
		t.Fatalf("health of a ready %s: exit %d, %s", name, code, errOut.String())
	}
	Must(t, lose())
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if code, body := Get(t, "http://"+addr+"/readyz"); code != 503 || !strings.Contains(body, "JetStream unreachable") {
			return fmt.Errorf("readyz: %d %q, want 503 naming JetStream", code, body)
		}
		return nil
	})
	errOut.Reset()
	if code := run(t.Context(), []string{"health", "--http", addr}, Env(nil), io.Discard, &errOut); code != 1 || !strings.Contains(errOut.String(), "JetStream") {
		t.Errorf("health: exit %d %q", code, errOut.String())
	}
	if code, _ := Get(t, "http://"+addr+"/healthz"); code != 200 {
		t.Errorf("healthz %d: the %s is alive", code, name)
	}
}

// WaitExit waits for a service's exit code on done after its context was
// cancelled: 0 within 15 s, or the test fails with the service's log.
func WaitExit(t *testing.T, done <-chan int, stderr *Log) {
	t.Helper()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after cancel:\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no shutdown 15 s after cancel")
	}
}
