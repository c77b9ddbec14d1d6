// Package stack runs the whole Communicator in one process on a data
// directory: an embedded NATS server with JetStream, the keyserver (with
// the admin API that ksctl talks to), one relay, one gateway, and one HTTP
// listener serving the metrics of all three with /healthz and /readyz. It
// is what `commstack` runs. A deployment runs the same parts as separate
// services (cmd/keyserver, cmd/relay, cmd/gateway) on a NATS cluster.
//
// The data directory:
//
//	DATA/keys/operator.key, .pub   the operator's admin key pair (ksctl --operator-key)
//	DATA/keys/keyserver.key, .pub  Sk_Ks, and Pk_Ks for clients and audits
//	DATA/keys/gateway.key, .pub    Sk_S, and Pk_S, the key clients pin
//	DATA/creds/<role>.nk           the NATS users' nkey seeds: keyserver, relay, gateway,
//	                               admin (ksctl --nats-creds), auditor (ksctl audit)
//	DATA/nats/                     JetStream's files: the event log, bundles, messages
//
// The keys and credentials are made on the first start and reused
// afterwards; private files are 0600 and a start is refused if one is
// readable by others. The NATS server has the production accounts
// (package natsauth): every part connects as its role, in process, and
// the loopback listener, if any, authenticates every connection too.
package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/internal/dirlock"
	"github.com/commsec/communicator/internal/embeddednats"
	"github.com/commsec/communicator/internal/metrics"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/service"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/relay"
	"github.com/commsec/communicator/streams"
)

// Defaults of the listeners.
const (
	DefaultGateway    = "127.0.0.1:7400"
	DefaultNATSListen = "127.0.0.1:4222"
	DefaultHTTP       = "127.0.0.1:9100"
)

// shutdownTimeout bounds each step of Close.
const shutdownTimeout = 5 * time.Second

// Config configures a stack.
type Config struct {
	// DataDir holds the keys and JetStream's files; required.
	DataDir string
	// Gateway is the clients' TCP address (DefaultGateway if empty; port 0
	// picks a free one).
	Gateway string
	// NATSListen is a loopback address where ksctl and the nats CLI reach
	// the embedded NATS server, e.g. DefaultNATSListen; empty means none
	// (in-process connections only). Every connection authenticates, with
	// the credentials in DATA/creds.
	NATSListen string
	// HTTP is the address of /metrics, /healthz and /readyz (DefaultHTTP
	// if empty).
	HTTP string
	// SyncInterval, when positive, fsyncs JetStream every interval instead
	// of on every write (faster; a crash loses acknowledged writes).
	SyncInterval time.Duration
	// Scratch adds an account of its own with JetStream for the load
	// tools' raw measurements on the same server (ScratchOption); no
	// deployment has it.
	Scratch bool
	// AcceptedShards is K, the number of streams the accepted messages
	// are sharded over (streams.Shards): 0 keeps the existing data
	// directory's, or takes streams.DefaultShards for a new one. K is
	// fixed when the streams are created: a different K on existing data
	// refuses to start.
	AcceptedShards streams.Shards
	Log            zerolog.Logger
}

func (c *Config) fill() error {
	if c.DataDir == "" {
		return errors.New("stack: no data directory")
	}
	if c.SyncInterval < 0 {
		return fmt.Errorf("stack: negative sync interval %v", c.SyncInterval)
	}
	if c.AcceptedShards != 0 {
		if err := c.AcceptedShards.Valid(); err != nil {
			return fmt.Errorf("stack: %w", err)
		}
	}
	if c.Gateway == "" {
		c.Gateway = DefaultGateway
	}
	if c.HTTP == "" {
		c.HTTP = DefaultHTTP
	}
	return nil
}

// Stack is a running Communicator.
type Stack struct {
	cfg   Config
	log   zerolog.Logger
	reg   *prometheus.Registry
	keys  *Keys
	creds *natsauth.Creds
	// credsCreated: this start made the NATS users (a first run).
	credsCreated bool
	scratch      nats.Option
	http         *service.Server
	nats         *embeddednats.Server
	conns        []*nats.Conn
	keyserver    *keyserver.Keyserver
	relay        *relay.Relay
	gateway      *gateway.Gateway
	closers      []func() // run in reverse order by Close
	ready        atomic.Bool
	closeOnce    sync.Once
}

// Start starts every part, in the order they depend on each other, and
// returns once clients can connect. On an error it stops what it started.
func Start(ctx context.Context, cfg Config) (*Stack, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	s := &Stack{cfg: cfg, log: cfg.Log, reg: metrics.NewRegistry()}
	if err := s.start(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.ready.Store(true)
	s.logWhere()
	return s, nil
}

func (s *Stack) start(ctx context.Context) error {
	if err := s.lockDataDir(); err != nil {
		return err
	}
	k, err := loadKeys(filepath.Join(s.cfg.DataDir, "keys"))
	if err != nil {
		return err
	}
	s.keys = k
	s.onClose(k.Wipe)
	if err := s.listenHTTP(); err != nil {
		return err
	}
	if err := s.startNATS(); err != nil {
		return err
	}
	if err := s.startKeyserver(ctx); err != nil {
		return err
	}
	if err := s.startRelay(ctx); err != nil {
		return err
	}
	return s.startGateway(ctx)
}

// LockFile is the file in the data directory that a running stack holds
// locked, with its PID: two stacks on one directory would corrupt
// JetStream's files.
const LockFile = "commstack.lock"

// lockDataDir takes the data directory's lock, released last by Close.
func (s *Stack) lockDataDir() error {
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("stack: data directory: %w", err)
	}
	l, err := dirlock.Acquire(filepath.Join(s.cfg.DataDir, LockFile))
	var held *dirlock.HeldError
	if errors.As(err, &held) {
		who := "another commstack"
		if held.PID > 0 {
			who = fmt.Sprintf("another commstack (pid %d)", held.PID)
		}
		return fmt.Errorf("stack: data directory %s is in use by %s: stop it, or give this one another --data", s.cfg.DataDir, who)
	}
	if err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	s.onClose(l.Unlock)
	return nil
}

// onClose adds a step to Close; the steps run last added first.
func (s *Stack) onClose(f func()) { s.closers = append(s.closers, f) }

// Close stops the gateway (saving the clients' cursors), the relay
// (releasing its partitions), the keyserver, NATS and the HTTP listener.
// It may be called more than once.
func (s *Stack) Close() {
	s.closeOnce.Do(func() {
		s.ready.Store(false)
		for i := len(s.closers) - 1; i >= 0; i-- {
			s.closers[i]()
		}
	})
}

// Ready is the readiness check of /readyz: every part started, every
// NATS connection up, and JetStream reachable by the relay and the
// gateway.
func (s *Stack) Ready() error {
	if !s.ready.Load() {
		return errors.New("starting")
	}
	for _, nc := range s.conns {
		if err := service.NATSReady(nc); err != nil {
			return err
		}
	}
	if err := s.relay.JetStream().Ready(); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	if err := s.gateway.JetStream().Ready(); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	return nil
}

// Keyserver is the stack's keyserver: its Go API is the admin API
// without the signed requests.
func (s *Stack) Keyserver() *keyserver.Keyserver { return s.keyserver }

// Relay is the stack's relay.
func (s *Stack) Relay() *relay.Relay { return s.relay }

// Gateway is the stack's gateway.
func (s *Stack) Gateway() *gateway.Gateway { return s.gateway }

// Keys are the stack's key pairs.
func (s *Stack) Keys() *Keys { return s.keys }

// GatewayAddr is where clients connect.
func (s *Stack) GatewayAddr() string { return s.gateway.Addr().String() }

// HTTPAddr is where /metrics, /healthz and /readyz are served.
func (s *Stack) HTTPAddr() string { return s.http.Addr() }

// NATSURL is the embedded NATS server's loopback URL, or "" if it has no
// listener.
func (s *Stack) NATSURL() string { return s.nats.ClientURL() }

// CredsDir holds the NATS users' seeds, one file per role.
func (s *Stack) CredsDir() string { return filepath.Join(s.cfg.DataDir, "creds") }

// ScratchOption authenticates a connection in the scratch account
// (Config.Scratch); nil without one.
func (s *Stack) ScratchOption() nats.Option { return s.scratch }

// StreamLastSeqs is the last sequence of every stream on the server, in
// every account, by stream name.
func (s *Stack) StreamLastSeqs() (map[string]uint64, error) { return s.nats.StreamLastSeqs() }

// Metrics is the registry of all three services, with the process's
// go_* and process_* metrics.
func (s *Stack) Metrics() *prometheus.Registry { return s.reg }

// Sync waits until the relay and the gateway have applied every event the
// keyserver has written: a change is then in force everywhere.
func (s *Stack) Sync(ctx context.Context) error {
	seq := s.keyserver.Projection().LastSeq()
	if err := s.relay.Projection().WaitFor(ctx, seq); err != nil {
		return fmt.Errorf("stack: relay catching up with the event log: %w", err)
	}
	if err := s.gateway.Projection().WaitFor(ctx, seq); err != nil {
		return fmt.Errorf("stack: gateway catching up with the event log: %w", err)
	}
	return nil
}
