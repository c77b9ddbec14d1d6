// Package interop holds the interoperability test of the C client
// library (clientsdk/c) with the Go stack: the C example client,
// commclient-c, and a Go client (clientsdk) exchange group messages
// through the commstack binary, the whole stack in one process, over TCP
// on 127.0.0.1; ksctl registers the clients and makes the group, as an
// operator would.
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
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
)

const step = 20 * time.Second // bounds every wait of the test

func TestCClientExchangesWithGoClient(t *testing.T) {
	bin := os.Getenv("COMM_C_CLIENT")
	if bin == "" {
		t.Skip("COMM_C_CLIENT is not set: build clientsdk/c and point it at build/c/commclient-c")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	tools := buildTools(ctx, t, dir)
	st := startStack(ctx, t, tools, dir)

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
	if err := keys.WriteFile(filepath.Join(dir, "bob.pub"), keys.EncodeClientPublic(bob.Public()), false); err != nil {
		t.Fatal(err)
	}
	st.ksctl(ctx, t, "client", "register", carlPrefix+".pub", "--name", "carl")
	st.ksctl(ctx, t, "client", "register", filepath.Join(dir, "bob.pub"), "--name", "bob")
	created := st.ksctl(ctx, t, "group", "create", "ops")
	m := regexp.MustCompile(`\(id ([0-9a-f]{32})\)`).FindStringSubmatch(created)
	if m == nil {
		t.Fatalf("ksctl group create printed no group id: %q", created)
	}
	g, err := protocol.ParseGroupID(m[1])
	if err != nil {
		t.Fatal(err)
	}
	st.ksctl(ctx, t, "group", "add", "ops", "carl", "bob")

	serverPub, err := keys.DecodePublicKey(readFile(t, st.keyFile("gateway.pub")), keys.KindServerPublic)
	if err != nil {
		t.Fatal(err)
	}
	keyserverPub, err := keys.DecodePublicKey(readFile(t, st.keyFile("keyserver.pub")), keys.KindKeyserverPublic)
	if err != nil {
		t.Fatal(err)
	}
	dctx, dcancel := context.WithTimeout(ctx, step)
	gob, err := clientsdk.Dial(dctx, clientsdk.Config{Addr: st.gateway, Identity: bob,
		ServerKey: serverPub, KeyserverKey: keyserverPub})
	if err == nil {
		err = gob.WaitKey(dctx, g)
	}
	dcancel()
	if err != nil {
		t.Fatalf("the Go client: %v", err)
	}
	defer gob.Close()

	conn := []string{"--gateway", st.gateway, "--key", carlPrefix + ".key",
		"--server-pub", st.keyFile("gateway.pub"), "--keyserver-pub", st.keyFile("keyserver.pub"), "--timeout", "15"}
	// C -> Go, twice: the second run resumes the send counter from the state file.
	var counters []uint64
	waitMember(ctx, t, bin, conn, g)
	for _, text := range []string{"hello from C", "again from C, after a restart"} {
		out := run(ctx, t, bin, append(append([]string{"send"}, conn...), g.String(), text)...)
		if strings.TrimSpace(out) != "accepted" {
			t.Fatalf("commclient-c send printed %q, want accepted", out)
		}
		m := receive(ctx, t, gob)
		if string(m.Payload) != text || m.Sender != carl.ID || m.Group != g {
			t.Fatalf("the Go client got %q from %s in %s, want %q from carl (%s) in %s",
				m.Payload, m.Sender, m.Group, text, carl.ID, g)
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

// buildTools builds the commstack and ksctl binaries (from the build cache
// after go test ./...).
func buildTools(ctx context.Context, t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "bin")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out+string(filepath.Separator),
		"github.com/commsec/communicator/cmd/commstack", "github.com/commsec/communicator/cmd/ksctl")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// stack is a running commstack process.
type stack struct {
	tools, data, gateway, nats string
}

func (s *stack) keyFile(name string) string { return filepath.Join(s.data, "keys", name) }

// ksctl runs an operator command against the stack and returns its output.
func (s *stack) ksctl(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	full := append([]string{"--nats", "nats://" + s.nats, "--nats-creds", filepath.Join(s.data, "creds", "admin.nk"),
		"--operator-key", s.keyFile("operator.key"), "--timeout", "15s"}, args...)
	return run(ctx, t, filepath.Join(s.tools, "ksctl"), full...)
}

// startStack starts commstack on free loopback ports and waits until it is ready.
func startStack(ctx context.Context, t *testing.T, tools, dir string) *stack {
	t.Helper()
	s := &stack{tools: tools, data: filepath.Join(dir, "data"), gateway: freeAddr(t), nats: freeAddr(t)}
	httpAddr := freeAddr(t)
	var logs bytes.Buffer
	cmd := exec.Command(filepath.Join(tools, "commstack"), "--data", s.data, "--gateway", s.gateway,
		"--nats-listen", s.nats, "--http", httpAddr, "--log-level", "warn", "--log-format", "json")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("commstack's log:\n%s", logs.String())
		}
	})
	run(ctx, t, filepath.Join(tools, "commstack"), "health", "--http", httpAddr, "--wait", "60s")
	return s
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitMember waits until commclient-c groups lists g: the gateway lists
// a client's groups as its projection of the event log has them, a moment
// after ksctl returns.
func waitMember(ctx context.Context, t *testing.T, bin string, conn []string, g protocol.GroupID) {
	t.Helper()
	deadline := time.Now().Add(step)
	for {
		out := run(ctx, t, bin, append([]string{"groups"}, conn...)...)
		if strings.Contains(out, g.String()+"  epoch ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("commclient-c groups does not list %s after %v: %q", g, step, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
