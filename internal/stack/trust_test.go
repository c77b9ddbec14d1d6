package stack

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/streams"
)

// TestCommstackNATSRequiresAuth: commstack's loopback NATS listener takes
// no connection without one of the credentials in DATA/creds (0600, in a
// 0700 directory), and the operator's own credentials cannot touch the
// streams. Before, it had no authentication: any local user published an
// envelope naming bob with counter 2^64-1, which the relay accepted, and
// deleted COMM_EVENTS.
func TestCommstackNATSRequiresAuth(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir)
	url := s.NATSURL()
	if nc, err := nats.Connect(url, nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a connection without credentials was accepted")
	}
	stranger, _ := nkeys.CreateUser()
	pub, _ := stranger.PublicKey()
	if nc, err := nats.Connect(url, nats.Nkey(pub, stranger.Sign), nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a connection with an unknown nkey was accepted")
	}
	checkPrivate(t, s.CredsDir())

	violations := make(chan error, 8)
	opts := []nats.Option{natsauthOption(t, s, natsauth.Admin), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err })}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("the operator's credentials: %v", err)
	}
	defer nc.Close()
	for _, subject := range []string{streams.PartitionSubject(0), "$JS.API.STREAM.DELETE." + streams.Events} {
		if _, err := nc.Request(subject, []byte("forged"), 2*time.Second); err == nil {
			t.Errorf("the admin's user got an answer on %s", subject)
		}
		select {
		case err := <-violations:
			if !strings.Contains(err.Error(), "Permissions Violation") {
				t.Errorf("%s: %v, want a permissions violation", subject, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: no permissions violation", subject)
		}
	}
	js, _ := jetstream.New(s.keyserverConn(t))
	if _, err := js.Stream(t.Context(), streams.Events); err != nil {
		t.Fatalf("the event log: %v", err)
	}
}

func natsauthOption(t *testing.T, s *Stack, r natsauth.Role) nats.Option {
	t.Helper()
	creds, err := natsauth.ReadCreds(s.CredsDir())
	if err != nil {
		t.Fatal(err)
	}
	return creds.Option(r)
}

// keyserverConn connects to s as its keyserver does.
func (s *Stack) keyserverConn(t *testing.T) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.NATSURL(), natsauthOption(t, s, natsauth.Keyserver))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v %v, want a 0700 directory", dir, st.Mode(), err)
	}
	for _, r := range natsauth.Roles {
		st, err := os.Stat(natsauth.SeedFile(dir, r))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s's seed: %v %v, want 0600", r, st, err)
		}
	}
}
