// Package interop holds the interoperability test of the C client
// library (clientsdk/c) with the Go stack: the C example client,
// commclient-c, and a Go client (clientsdk) exchange group messages
// through the one-process stack that `commstack` runs (internal/stack),
// over TCP on 127.0.0.1.
//
// It runs when COMM_C_CLIENT names a built commclient-c (`.ci/run` builds
// it with CMake and sets it), and is skipped otherwise:
//
//	cmake -S clientsdk/c -B build/c && cmake --build build/c
//	COMM_C_CLIENT=$PWD/build/c/commclient-c go test -count=1 -v ./clientsdk/c/interop
package interop

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/commsec/communicator/clientsdk"
	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/internal/stack"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
)

const step = 20 * time.Second // bounds every wait of the test

func TestCClientExchangesWithGoClient(t *testing.T) {
	bin := os.Getenv("COMM_C_CLIENT")
	if bin == "" {
		t.Skip("COMM_C_CLIENT is not set: build clientsdk/c and point it at build/c/commclient-c")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	s, err := stack.Start(ctx, stack.Config{DataDir: filepath.Join(dir, "data"), Gateway: "127.0.0.1:0",
		HTTP: "127.0.0.1:0", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ks := s.Keyserver()

	// carl is the C client: its identity is made by commclient-c keygen.
	carlPrefix := filepath.Join(dir, "carl")
	run(ctx, t, bin, "keygen", "--out", carlPrefix)
	pubFile, err := os.ReadFile(carlPrefix + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	carl, err := keys.DecodeClientPublic(pubFile)
	if err != nil {
		t.Fatalf("commclient-c keygen wrote a .pub the Go keys package refuses: %v", err)
	}
	bob, err := keys.GenerateClientIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, pub := range map[string]keys.ClientPublic{"carl": carl, "bob": bob.Public()} {
		if err := ks.RegisterClient(ctx, keyserver.Actor{}, pub, name); err != nil {
			t.Fatal(err)
		}
	}
	g, err := ks.CreateGroup(ctx, keyserver.Actor{}, "ops", events.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ks.AddMembers(ctx, keyserver.Actor{}, "ops", []string{"carl", "bob"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	k := s.Keys()
	dctx, dcancel := context.WithTimeout(ctx, step)
	gob, err := clientsdk.Dial(dctx, clientsdk.Config{Addr: s.GatewayAddr(), Identity: bob,
		ServerKey: k.Gateway.Public(), KeyserverKey: k.Keyserver.Public()})
	if err == nil {
		err = gob.WaitKey(dctx, g)
	}
	dcancel()
	if err != nil {
		t.Fatalf("the Go client: %v", err)
	}
	defer gob.Close()

	conn := []string{"--gateway", s.GatewayAddr(), "--key", carlPrefix + ".key",
		"--server-pub", k.Path("gateway", ".pub"), "--keyserver-pub", k.Path("keyserver", ".pub"), "--timeout", "15"}

	// C -> Go, twice: the second run resumes the send counter from the state file.
	var counters []uint64
	for _, text := range []string{"hello from C", "again from C, after a restart"} {
		out := run(ctx, t, bin, append(append([]string{"send"}, conn...), g.String(), text)...)
		if strings.TrimSpace(out) != "accepted" {
			t.Fatalf("commclient-c send printed %q, want accepted", out)
		}
		m := receive(ctx, t, gob)
		if string(m.Payload) != text || m.Sender != protocol.ClientID(carl.ID) || m.Group != g {
			t.Fatalf("the Go client got %q from %s in %s, want %q from carl (%s) in %s",
				m.Payload, m.Sender, m.Group, text, protocol.ClientID(carl.ID), g)
		}
		counters = append(counters, m.Counter)
		t.Logf("C -> Go: %q, counter %d, epoch %d", m.Payload, m.Counter, m.Epoch)
	}
	if counters[1] <= counters[0] {
		t.Fatalf("the C client reused or lowered its counter across a restart: %v", counters)
	}

	// Go -> C: commclient-c listen prints the message the Go client sends.
	lctx, lcancel := context.WithTimeout(ctx, step)
	defer lcancel()
	listen := exec.CommandContext(lctx, bin, append(append([]string{"listen"}, conn...), "--count", "1", "--for", "15")...)
	var stdout bytes.Buffer
	listen.Stdout = &stdout
	stderr, err := listen.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := listen.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() { // the listener says so once its handshake is done and its groups are known
		var seen strings.Builder
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			seen.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "listening as client") {
				ready <- ""
			}
		}
		ready <- seen.String()
	}()
	if msg := <-ready; msg != "" {
		listen.Wait()
		t.Fatalf("commclient-c listen stopped before it listened:\n%s", msg)
	}
	sctx, scancel := context.WithTimeout(ctx, step)
	err = gob.Send(sctx, g, []byte("hello from Go"))
	scancel()
	if err != nil {
		t.Fatalf("the Go client's send: %v", err)
	}
	if err := listen.Wait(); err != nil {
		t.Fatalf("commclient-c listen: %v (stdout %q)", err, stdout.String())
	}
	line := strings.TrimSpace(stdout.String())
	want := g.String() + " from " + bob.ID().Short() + " epoch "
	if !strings.HasPrefix(line, want) || !strings.HasSuffix(line, "  hello from Go") {
		t.Fatalf("commclient-c listen printed %q, want %q...%q", line, want, "  hello from Go")
	}
	t.Logf("Go -> C: %s", line)
}

// run runs commclient-c and returns its stdout; it fails the test on a
// nonzero exit.
func run(ctx context.Context, t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, step)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("commclient-c %s: %v\nstdout: %s\nstderr: %s", args[0], err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func receive(ctx context.Context, t *testing.T, c *clientsdk.Client) clientsdk.Message {
	t.Helper()
	select {
	case m := <-c.Messages():
		return m
	case <-time.After(step):
		t.Fatal("the Go client received nothing")
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	return clientsdk.Message{}
}
