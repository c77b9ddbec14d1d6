package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/commsec/communicator/internal/natsauth"
)

// What NATS says asynchronously: nats.go reports a permissions violation
// through the connection's error handler, while the request that caused
// it waits for an answer that will never come. asyncErrors ends that wait
// at once: a violation cancels the command's context with a *refusedError
// as its cause. Any other asynchronous error is kept, to be told if the
// command then fails.
type asyncErrors struct {
	abort context.CancelCauseFunc
	creds string // --nats-creds, for the message
	role  natsauth.Role

	mu    sync.Mutex
	other error
}

// refusedError is a NATS permissions violation: the credentials do not
// allow what the command does.
type refusedError struct {
	err   error
	creds string
	role  natsauth.Role
}

func (e *refusedError) Error() string {
	creds := "no --nats-creds"
	if e.creds != "" {
		creds = "the credentials in " + e.creds
	}
	return fmt.Sprintf("NATS refused it: %v\n  %s do not allow this: this command needs the %s user's nkey seed (%s.nk; commstack: DATA/creds/, docker compose: deploy/secrets/nats/)",
		e.err, creds, e.role, e.role)
}

func (e *refusedError) Unwrap() error { return e.err }

func (h *asyncErrors) handle(_ *nats.Conn, _ *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrPermissionViolation) {
		h.abort(&refusedError{err: err, creds: h.creds, role: h.role})
		return
	}
	h.mu.Lock()
	h.other = err
	h.mu.Unlock()
}

// explain replaces a command's error by the refusal that caused it, or
// adds what NATS reported meanwhile.
func (h *asyncErrors) explain(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var refused *refusedError
	if errors.As(context.Cause(ctx), &refused) {
		return refused
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.other != nil {
		return fmt.Errorf("%w (NATS also reported: %v)", err, h.other)
	}
	return err
}

// roleOf is the NATS role of a ksctl connection name.
func roleOf(name string) natsauth.Role {
	if name == "ksctl-audit" {
		return natsauth.Auditor
	}
	return natsauth.Admin
}

// connectHint says what to do about a failed connection, when ksctl can
// tell: the credentials or the CA to give.
func connectHint(g globals, role natsauth.Role, err error) string {
	var unknownCA x509.UnknownAuthorityError
	var badName x509.HostnameError
	switch {
	case errors.Is(err, nats.ErrAuthorization) && g.natsCreds == "":
		return fmt.Sprintf("\n  NATS wants credentials: give --nats-creds FILE (or COMM_NATS_CREDS), the %s user's nkey seed: DATA/creds/%s.nk for commstack, deploy/secrets/nats/%s.nk for docker compose",
			role, role, role)
	case errors.Is(err, nats.ErrAuthorization):
		return fmt.Sprintf("\n  the server does not know the credentials in %s: are they this deployment's? (the %s user's seed: DATA/creds/%s.nk for commstack, deploy/secrets/nats/%s.nk for docker compose)",
			g.natsCreds, role, role, role)
	case (errors.As(err, &unknownCA) || errors.As(err, &badName)) && g.natsCA == "":
		return "\n  the server's TLS certificate is not from a CA this machine trusts: give the deployment's CA with --nats-ca FILE (or COMM_NATS_CA): deploy/secrets/nats/ca.pem for docker compose"
	case errors.As(err, &unknownCA):
		return fmt.Sprintf("\n  the server's TLS certificate is not signed by the CA in %s: is it this deployment's ca.pem?", g.natsCA)
	case errors.As(err, &badName):
		return "\n  the server's TLS certificate does not name the host of the URL: use a name it carries (for docker compose: 127.0.0.1 or localhost from the host, nats-1..3 inside)"
	case errors.Is(err, nats.ErrSecureConnWanted):
		return "\n  the server does not offer TLS, which --nats-ca asks for: check the URL, or drop --nats-ca for a server without TLS"
	}
	return ""
}
