package service

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/internal/natsauth"
)

// CheckNATSURL checks a NATS server URL, or a comma-separated list of
// them, before any connection is tried.
func CheckNATSURL(s string) error {
	if s == "" {
		return fmt.Errorf("no NATS URL")
	}
	for part := range strings.SplitSeq(s, ",") {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil {
			return fmt.Errorf("NATS URL %q: %w", part, err)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("NATS URL %q: want nats://host:port (or tls://, ws://, wss://)", part)
		}
		if u.Host == "" {
			return fmt.Errorf("NATS URL %q has no host", part)
		}
	}
	return nil
}

// NATSClient is how a program reaches NATS: the --nats, --nats-creds and
// --nats-ca flags (COMM_NATS_URL, COMM_NATS_CREDS, COMM_NATS_CA) of every
// service binary and of ksctl.
type NATSClient struct {
	// URL is one server URL or several, comma-separated.
	URL string
	// Creds is an nkey seed file (as comminit writes) or a JWT credentials
	// file; empty for none.
	Creds string
	// CA is the PEM certificate of the CA that signs the servers'
	// certificates. When set, the connection runs over TLS whatever the
	// URL's scheme, and the server must prove a name of its URL with a
	// certificate from this CA alone; empty: TLS only if the URL is
	// tls:// or the server requires it, verified against the system's
	// roots.
	CA string
}

// Options are the options of a NATS client: a name, the reply-inbox
// prefix of its role (so that least-privilege permissions can keep roles
// from reading each other's replies; see package natsauth), the
// credentials and the CA. The files are read now, so that a wrong path or
// a foreign file is reported as such.
func (c NATSClient) Options(name string) ([]nats.Option, error) {
	opts := []nats.Option{nats.Name(name), nats.CustomInboxPrefix(natsauth.InboxPrefix(roleOf(name)))}
	if c.Creds != "" {
		auth, err := credentials(c.Creds)
		if err != nil {
			return nil, fmt.Errorf("--nats-creds %s: %w", c.Creds, err)
		}
		opts = append(opts, auth)
	}
	if c.CA != "" {
		ca, err := rootCA(c.CA)
		if err != nil {
			return nil, fmt.Errorf("--nats-ca %s: %w", c.CA, err)
		}
		opts = append(opts, ca)
	}
	return opts, nil
}

// rootCA checks that path holds a PEM certificate before nats.RootCAs
// takes it, so that a key or an empty file is named as such.
func rootCA(path string) (nats.Option, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		return nil, errors.New("no PEM certificate in it (want the CA certificate, e.g. ca.pem from comminit)")
	}
	return nats.RootCAs(path), nil
}

// roleOf maps a connection name to its role: "comm-<role>" for services,
// "ksctl" (admin) and "ksctl-audit" (auditor) for the CLI.
func roleOf(name string) natsauth.Role {
	switch name {
	case "ksctl":
		return natsauth.Admin
	case "ksctl-audit":
		return natsauth.Auditor
	}
	return natsauth.Role(strings.TrimPrefix(name, "comm-"))
}

func credentials(path string) (nats.Option, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(data)
	text := strings.TrimSpace(string(data))
	switch {
	case strings.Contains(text, "BEGIN NATS USER JWT"):
		return nats.UserCredentials(path), nil
	case strings.HasPrefix(text, "SU"):
		return nats.NkeyOptionFromSeed(path)
	}
	return nil, errors.New("neither an nkey user seed (SU...) nor a JWT credentials file")
}

// ConnectNATS connects a long-running service to c.URL, waiting (and
// logging) until the server answers or ctx ends. Afterwards the
// connection reconnects forever; nc.Status tells readiness checks whether
// it is connected.
func ConnectNATS(ctx context.Context, c NATSClient, name string, log zerolog.Logger) (*nats.Conn, error) {
	url := c.URL
	opts, err := c.Options(name)
	if err != nil {
		return nil, err
	}
	connected := make(chan struct{})
	var once sync.Once
	opts = append(opts, nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		nats.ConnectHandler(func(*nats.Conn) { once.Do(func() { close(connected) }) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own Close or Drain
				log.Warn().Err(err).Msg("NATS disconnected")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS reconnected") }),
		nats.ReconnectErrHandler(changedErr(func(err error) { log.Warn().Err(err).Msg("NATS connection attempt failed") })))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("NATS %s: %w", url, err)
	}
	if nc.IsConnected() {
		return nc, nil
	}
	log.Warn().Str("url", url).Msg("NATS not reachable yet; retrying every second")
	select {
	case <-connected:
		return nc, nil
	case <-ctx.Done():
		nc.Close()
		return nil, fmt.Errorf("NATS %s: gave up waiting: %w", url, ctx.Err())
	}
}

// changedErr calls f with each error that differs from the one before: a
// server that refuses the credentials or the certificate is reported once,
// not every second.
func changedErr(f func(error)) func(*nats.Conn, error) {
	var mu sync.Mutex
	var last string
	return func(_ *nats.Conn, err error) {
		mu.Lock()
		changed := err.Error() != last
		last = err.Error()
		mu.Unlock()
		if changed {
			f(err)
		}
	}
}

// NATSReady is a readiness check of a connection.
func NATSReady(nc *nats.Conn) error {
	if s := nc.Status(); s != nats.CONNECTED {
		return fmt.Errorf("NATS connection %s", strings.ToLower(s.String()))
	}
	return nil
}

// DrainNATS drains nc (pending messages are handled and published ones
// flushed) and waits until it is closed, closing it outright after
// timeout.
func DrainNATS(nc *nats.Conn, timeout time.Duration) error {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		if errors.Is(err, nats.ErrConnectionClosed) {
			return nil
		}
		return fmt.Errorf("NATS drain: %w", err)
	}
	select {
	case <-closed:
		return nil
	case <-time.After(timeout):
		nc.Close()
		return fmt.Errorf("NATS drain: not done after %v; closed", timeout)
	}
}
