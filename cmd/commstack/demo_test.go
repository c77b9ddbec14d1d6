package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/commsec/communicator/internal/cmdtest"
)

// TestDemo runs the demo on a temporary directory: every step is printed,
// carol can neither read nor send after her removal, and the directory
// is gone afterwards.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := runDemo(t.Context(), demoConfig{log: zerolog.Nop()}, &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{
		`bob   received from alice "meet at the north gate at 0600" (epoch 1, counter 1)`,
		`alice received from carol "copy, on my way" (epoch 1`,
		"members of epoch 2 in the event log: alice, bob\n",
		"alice  received, verified and installed the key of epoch 2",
		"carol  holds no key for epoch 2 (her newest: epoch 1)",
		`bob   received from alice "new rally point: the east bridge" (epoch 2`,
		"carol received nothing",
		`carol -> ops  "am I still in?": REFUSED by her own client: the gateway told it she is no longer a member`,
		"carol after her removal     0 messages received, 0 sent; her newest key is epoch 1's",
		`comm_relay_verdicts_total{reason="",verdict="accepted"} 4`,
		"all 19 checks passed",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "FAILED") {
		t.Errorf("a check failed:\n%s", text)
	}
	dir := strings.Fields(text[strings.Index(text, "  data ")+len("  data "):])[0]
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temporary data directory %s left behind: %v", dir, err)
	}
}

// TestDemoKeepsData: with --data the keys and the log stay, and a second
// demo on the same directory is refused because the names are taken.
func TestDemoKeepsData(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	dir := filepath.Join(t.TempDir(), "data")
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"demo", "--data", dir, "--log-level", "error"}, cmdtest.Env(nil), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut.String(), out.String())
	}
	if !strings.Contains(out.String(), "ksctl audit ops --nats-creds "+dir+"/creds/auditor.nk --keyserver-pub "+dir+"/keys/keyserver.pub") {
		t.Errorf("the demo does not say how to audit what it left:\n%s", out.String())
	}
	for _, f := range []string{"keys/operator.key", "keys/keyserver.pub", "keys/gateway.key", "creds/auditor.nk", "nats/jetstream"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	errOut.Reset()
	if code := run(t.Context(), []string{"demo", "--data", dir, "--log-level", "error"}, cmdtest.Env(nil), io.Discard, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "already has a client alice") {
		t.Errorf("second demo on the same directory: exit %d %q", code, errOut.String())
	}
}
