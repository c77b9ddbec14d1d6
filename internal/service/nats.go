package service

import (
	"context"
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

// NATSOptions are the options of a NATS client: a name, the reply-inbox
// prefix of its role (so that least-privilege permissions can keep roles
// from reading each other's replies; see package natsauth), and
// credentials when creds is not empty: an nkey seed file (as comminit
// writes) or a JWT credentials file. The file is read now, so that a wrong
// path or a foreign file is reported as such.
func NATSOptions(name, creds string) ([]nats.Option, error) {
	opts := []nats.Option{nats.Name(name), nats.CustomInboxPrefix(natsauth.InboxPrefix(roleOf(name)))}
	if creds == "" {
		return opts, nil
	}
	auth, err := credentials(creds)
	if err != nil {
		return nil, fmt.Errorf("NATS credentials %s: %w", creds, err)
	}
	return append(opts, auth), nil
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

// ConnectNATS connects a long-running service to url, waiting (and
// logging) until the server answers or ctx ends. Afterwards the
// connection reconnects forever; nc.Status tells readiness checks whether
// it is connected.
func ConnectNATS(ctx context.Context, url, name, creds string, log zerolog.Logger) (*nats.Conn, error) {
	opts, err := NATSOptions(name, creds)
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
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS reconnected") }))
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
