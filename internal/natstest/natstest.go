// Package natstest starts a real nats-server with JetStream inside a test:
// a random loopback port and a t.TempDir() data directory, shut down when
// the test ends.
//
// Start runs it with the production authorization (package natsauth:
// an account per role and per stream, an nkey user per role); each part
// of the Communicator connects as its role (Server.Conn). Open runs it
// without authentication and without a listener, for unit tests of logic
// that is not about the trust boundary: one in-process connection may do
// everything there.
//
// StartCluster runs a JetStream cluster of such servers whose routes run
// through TCP proxies the test owns: Cluster.Isolate cuts a node off
// from the others while its clients stay connected to it, as a network
// partition does.
package natstest

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/commsec/communicator/internal/embeddednats"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natstls"
)

// Server is a test server with the production accounts and a user per role.
type Server struct {
	*embeddednats.Server
	Creds  *natsauth.Creds
	Dir    string // the data directory
	CAFile string // StartTLS: the CA certificate that signs the server's
}

// Start starts a server for t with fsync on every write, as in production.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartAt(t, t.TempDir())
}

// StartFast is Start with fsync every minute instead of on every write, for
// tests that write thousands of messages and are not about durability.
func StartFast(t testing.TB) *Server {
	t.Helper()
	return start(t, t.TempDir(), time.Minute)
}

// StartAt starts a server on a data directory, to test restarts: the
// users' credentials live in DIR/creds, made on the first start.
func StartAt(t testing.TB, dir string) *Server {
	t.Helper()
	return start(t, dir, 0)
}

// StartTLS is Start with a listener that requires TLS, under a
// certificate for 127.0.0.1 and localhost from a fresh CA whose
// certificate is in CAFile.
func StartTLS(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	ca, err := natstls.NewCA("natstest CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue([]string{"127.0.0.1", "localhost"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	s := start(t, dir, 0, func(o *embeddednats.Options) {
		o.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	})
	s.CAFile = caFile
	return s
}

// start starts a server on dir; more adjust its options (a cluster node's,
// a TLS listener).
func start(t testing.TB, dir string, sync time.Duration, more ...func(*embeddednats.Options)) *Server {
	t.Helper()
	creds, _, err := natsauth.LoadOrCreate(filepath.Join(dir, "creds"))
	if err != nil {
		t.Fatal(err)
	}
	o := embeddednats.Options{DataDir: filepath.Join(dir, "nats"), Listen: "127.0.0.1:0", Name: "test",
		Auth: natsauth.Config(creds.Users()), SyncInterval: sync}
	for _, f := range more {
		f(&o)
	}
	s, err := embeddednats.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return &Server{Server: s, Creds: creds, Dir: dir}
}

// Conn opens a TCP connection as role r, closed when the test ends.
func (s *Server) Conn(t testing.TB, r natsauth.Role, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := s.Dial(r, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Dial opens a TCP connection as role r; the caller closes it.
func (s *Server) Dial(r natsauth.Role, opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{s.Creds.Option(r), nats.Name("test-" + string(r)), nats.Timeout(5 * time.Second)}, opts...)
	if s.CAFile != "" {
		opts = append(opts, nats.RootCAs(s.CAFile))
	}
	return nats.Connect(s.ClientURL(), opts...)
}

// CredsFile is the seed file of role r, for commands' --nats-creds.
func (s *Server) CredsFile(r natsauth.Role) string {
	return natsauth.SeedFile(filepath.Join(s.Dir, "creds"), r)
}

// Open starts a server without authentication or listener and returns
// it with one in-process connection, for unit tests that are not about
// the trust boundary.
func Open(t testing.TB) (*embeddednats.Server, *nats.Conn) {
	t.Helper()
	return open(t, 0)
}

// OpenFast is Open with fsync every minute.
func OpenFast(t testing.TB) (*embeddednats.Server, *nats.Conn) {
	t.Helper()
	return open(t, time.Minute)
}

func open(t testing.TB, sync time.Duration) (*embeddednats.Server, *nats.Conn) {
	t.Helper()
	s, err := embeddednats.Start(embeddednats.Options{DataDir: t.TempDir(), Name: "test", SyncInterval: sync})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return s, nc
}

// CheckFor polls f until it returns nil or d passes, like nats-server's
// checkFor: tests poll, they do not sleep.
func CheckFor(t testing.TB, d, every time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %v: %v", d, err)
		}
		time.Sleep(every)
	}
}

// Twin starts another server with the same users as s, not clustered
// with it: somewhere else a client of s can go.
func (s *Server) Twin(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	if err := s.Creds.Write(filepath.Join(dir, "creds")); err != nil {
		t.Fatal(err)
	}
	return StartAt(t, dir)
}
