package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"strings"
	"time"

	"github.com/commsec/communicator/clientsdk"
	"github.com/commsec/communicator/internal/service"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/clientstate"
	"github.com/commsec/communicator/protocol/keys"
)

// connEnv names the environment variable of each connection flag.
var connEnv = map[string]string{
	"gateway": "COMM_GATEWAY", "key": "COMM_CLIENT_KEY", "server-pub": "COMM_SERVER_PUB",
	"keyserver-pub": "COMM_KEYSERVER_PUB", "state": "COMM_STATE",
}

const defaultGateway = "127.0.0.1:7400"

// connFlags are the flags of the commands that connect to a gateway.
type connFlags struct {
	gateway, key, serverPub, keyserverPub, state string
	timeout                                      time.Duration
	// syncWait bounds the wait for the key bundles and the groups after
	// the handshake (default timeout).
	syncWait time.Duration
}

func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.gateway, "gateway", defaultGateway, "the gateway's `HOST:PORT`")
	fs.StringVar(&c.key, "key", "", "this client's identity `FILE` (PREFIX.key from keygen)")
	fs.StringVar(&c.serverPub, "server-pub", "", "the gateway's public key `FILE` (gateway.pub)")
	fs.StringVar(&c.keyserverPub, "keyserver-pub", "", "the keyserver's public key `FILE` (keyserver.pub)")
	fs.StringVar(&c.state, "state", "", "the client's state `FILE` (default PREFIX.state next to the key)")
	fs.DurationVar(&c.timeout, "timeout", 15*time.Second, "`DUR` that bounds connecting and each wait")
}

// complete applies the environment and checks that nothing required is
// missing; its errors are usage errors.
func (c *connFlags) complete(cmd *command, fs *flag.FlagSet, getenv func(string) string) error {
	if err := service.ApplyEnv(fs, connEnv, getenv); err != nil {
		return &usageError{cmd, err.Error()}
	}
	for _, req := range []struct{ name, val, hint string }{
		{"key", c.key, "this client's PREFIX.key (make one with 'commclient keygen --out PREFIX')"},
		{"server-pub", c.serverPub, "the gateway's gateway.pub, from the operator"},
		{"keyserver-pub", c.keyserverPub, "the keyserver's keyserver.pub, from the operator"},
	} {
		if req.val == "" {
			return &usageError{cmd, fmt.Sprintf("--%s is required (or %s): %s", req.name, connEnv[req.name], req.hint)}
		}
	}
	if c.timeout <= 0 {
		return &usageError{cmd, "--timeout must be positive"}
	}
	if c.state == "" {
		c.state = strings.TrimSuffix(c.key, ".key") + ".state"
	}
	return nil
}

// session is a connected client holding its state file's lock.
type session struct {
	*clientsdk.Client
	id     protocol.ClientID
	unlock func()
}

// Close disconnects and releases the state file.
func (s *session) Close() {
	s.Client.Close()
	s.unlock()
}

// dial loads the key files, locks the state file and connects.
func (c *connFlags) dial(ctx context.Context, a *app) (*session, error) {
	cfg, err := c.config(a)
	if err != nil {
		return nil, err
	}
	id := cfg.Identity.ID()
	unlock, err := lockState(c.state)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cl, err := clientsdk.Dial(dctx, cfg)
	if err != nil {
		unlock()
		return nil, c.explain(err, id)
	}
	s := &session{Client: cl, id: id, unlock: unlock}
	wait := c.timeout
	if c.syncWait > 0 {
		wait = c.syncWait
	}
	sctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := c.synced(sctx, s, wait); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// synced waits until the gateway has pushed the client's key bundles and
// told it its groups, and refuses to go on if a bundle was refused: with
// the keys it already holds the client would send under epochs the
// keyserver has moved past, and read nothing new.
func (c *connFlags) synced(ctx context.Context, s *session, wait time.Duration) error {
	if err := s.WaitSynced(ctx); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("the gateway at %s did not send this client's keys and groups within %v", c.gateway, wait)
		}
		return err
	}
	err := s.BundleError()
	switch {
	case errors.Is(err, protocol.ErrBadBundleSignature):
		return fmt.Errorf("--keyserver-pub %s is not the key that signs this client's key bundles: "+
			"the wrong keyserver.pub (another deployment's?), or the gateway forged them; none was installed", c.keyserverPub)
	case err != nil:
		return fmt.Errorf("a key bundle from the gateway was refused: %w", err)
	}
	return nil
}

// config builds the SDK configuration from the key files.
func (c *connFlags) config(a *app) (clientsdk.Config, error) {
	id, err := readIdentity(c.key)
	if err != nil {
		return clientsdk.Config{}, err
	}
	srv, err := readPublic("server-pub", c.serverPub, keys.KindServerPublic)
	if err != nil {
		return clientsdk.Config{}, err
	}
	ks, err := readPublic("keyserver-pub", c.keyserverPub, keys.KindKeyserverPublic)
	if err != nil {
		return clientsdk.Config{}, err
	}
	return clientsdk.Config{
		Addr: c.gateway, Identity: id, ServerKey: srv, KeyserverKey: ks,
		Store: &clientstate.FileStore{Path: c.state}, HandshakeTimeout: c.timeout,
		Buffer: 1, // a message is persisted as seen before it is handed over: keep few in flight
		Logf:   func(f string, v ...any) { fmt.Fprintf(a.stderr, "commclient: "+f+"\n", v...) },
	}, nil
}

func readIdentity(path string) (*keys.ClientIdentity, error) {
	data, err := keys.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("--key %s: no such file (make one with 'commclient keygen --out PREFIX')", path)
	}
	if err != nil {
		return nil, fmt.Errorf("--key %s: %w", path, err)
	}
	defer clear(data)
	id, err := keys.DecodeClientIdentity(data)
	if err != nil {
		return nil, fmt.Errorf("--key %s: %w (want the PREFIX.key that keygen wrote)", path, err)
	}
	return id, nil
}

func readPublic(flagName, path string, kind keys.Kind) ([protocol.PublicKeySize]byte, error) {
	data, err := keys.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return [32]byte{}, fmt.Errorf("--%s %s: no such file (the operator gives it to you)", flagName, path)
	}
	if err != nil {
		return [32]byte{}, fmt.Errorf("--%s %s: %w", flagName, path, err)
	}
	pub, err := keys.DecodePublicKey(data, kind)
	if err != nil {
		return [32]byte{}, fmt.Errorf("--%s %s: %w", flagName, path, err)
	}
	return pub, nil
}

// explain turns a failed first connection into what the person can do
// about it.
func (c *connFlags) explain(err error, id protocol.ClientID) error {
	var peer *protocol.PeerError
	var op *net.OpError
	switch {
	case errors.As(err, &peer) && peer.Code == protocol.CodeDenied:
		return fmt.Errorf("the gateway does not admit this client (id %s): is it registered? "+
			"An operator registers it with 'ksctl client register %s.pub --name NAME'; a revoked client needs a new key",
			id, strings.TrimSuffix(c.key, ".key"))
	case errors.As(err, &peer) && peer.Code == protocol.CodeBusy:
		return fmt.Errorf("the gateway at %s is busy (too many handshakes at once): try again shortly", c.gateway)
	case errors.As(err, &peer):
		return fmt.Errorf("the gateway at %s refused the handshake (%v)", c.gateway, peer.Code)
	case errors.Is(err, protocol.ErrWrongServerKey), errors.Is(err, protocol.ErrBadServerSignature):
		return fmt.Errorf("the server at %s is not the gateway of --server-pub %s: wrong gateway.pub, or another deployment's gateway", c.gateway, c.serverPub)
	case errors.Is(err, protocol.ErrUnsupportedVersion), errors.Is(err, protocol.ErrUnsupportedSuite),
		errors.Is(err, protocol.ErrUnexpectedMessage), errors.Is(err, protocol.ErrMessageLength):
		return fmt.Errorf("the server at %s does not speak this client's protocol (%v): is --gateway the gateway's address?", c.gateway, unwrapAll(err))
	case errors.Is(err, protocol.ErrHandshakeTimeout):
		return fmt.Errorf("no handshake answer from %s within %v: is it a Communicator gateway?", c.gateway, c.timeout)
	case errors.As(err, &op) && op.Op == "dial", errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("cannot reach the gateway at %s: %v (is it running? check --gateway or COMM_GATEWAY)", c.gateway, unwrapAll(err))
	}
	return fmt.Errorf("connecting to the gateway at %s: %w", c.gateway, err)
}

// unwrapAll returns the innermost error, for a short message.
func unwrapAll(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}
