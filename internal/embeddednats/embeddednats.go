// Package embeddednats runs nats-server with JetStream inside our own
// process: the one-machine default of the Communicator, and the server
// every test talks to.
//
// Durability: by default every JetStream write is fsynced before it is
// acknowledged (sync_always). nats-server's own default fsyncs every two
// minutes, and the 2025 Jepsen analysis of NATS showed acknowledged writes
// lost on a crash under that default. Our event log is the system's memory
// and an acknowledged message is a promise to its sender, so we pay for the
// fsync. Options.SyncInterval trades that away explicitly.
package embeddednats

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// Options configure an embedded server.
type Options struct {
	// DataDir holds JetStream's files; required.
	DataDir string
	// Auth is the authorization of the server: the accounts block that
	// package natsauth renders (natsauth.Config). Every connection then
	// authenticates, in-process ones too. Empty means none, which is
	// refused with a listener: for unit tests with in-process connections.
	Auth string
	// Listen is an optional loopback address ("127.0.0.1:4222") for
	// operators and the nats CLI; port 0 picks a free port. Empty means no
	// listener: in-process connections only. It needs Auth.
	Listen string
	// TLS, when set, is the listener's TLS configuration: every TCP
	// connection must then run over TLS (in-process ones do not).
	TLS *tls.Config
	// SyncInterval, when positive, fsyncs every interval instead of on
	// every write (faster, loses acknowledged writes on a crash).
	SyncInterval time.Duration
	// Name is the server's name in logs and monitoring ("comm-embedded").
	Name string
	// Log receives the server's log lines; a zero Logger discards them.
	Log zerolog.Logger
	// ReadyTimeout bounds the start-up (default 30 s).
	ReadyTimeout time.Duration
	// Cluster, if set, makes the server a node of a JetStream cluster:
	// for tests of what a cluster does when a node is cut off (package
	// natstest). Name must then be unique in the cluster.
	Cluster *Cluster
}

// Cluster is the clustering of a node: its route listener and the routes
// it dials. The routes are not authenticated: the listener is loopback
// only, for clusters inside one test process.
type Cluster struct {
	// Name is the cluster's name, the same on every node; required.
	Name string
	// Listen is the loopback address of the route listener; port 0 picks
	// a free port (ClusterAddr).
	Listen string
	// Routes are the nats-route:// URLs of the other nodes, dialed and
	// redialed forever.
	Routes []string
	// Advertise is the route address the node tells the others, which
	// they may dial when they learn of it (gossip); empty means Listen's.
	Advertise string
}

func (o *Options) validate() error {
	if o.DataDir == "" {
		return errors.New("embeddednats: DataDir is required")
	}
	if o.Listen != "" {
		host, _, err := net.SplitHostPort(o.Listen)
		if err != nil {
			return fmt.Errorf("embeddednats: listen address %q: %w", o.Listen, err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("embeddednats: listen address %q is not loopback; the embedded server listens on this machine only", o.Listen)
		}
		if o.Auth == "" {
			return fmt.Errorf("embeddednats: a listener (%s) without authentication: any local user could write to every stream", o.Listen)
		}
	}
	if o.Cluster != nil {
		return o.Cluster.validate()
	}
	return nil
}

func (c *Cluster) validate() error {
	if c.Name == "" {
		return errors.New("embeddednats: a cluster needs a name")
	}
	if err := checkLoopback(c.Listen); err != nil {
		return fmt.Errorf("embeddednats: cluster listen address %q: %w", c.Listen, err)
	}
	return nil
}

// checkLoopback checks that addr is HOST:PORT with a loopback HOST.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return errors.New("not loopback; the embedded server listens on this machine only")
	}
	return nil
}

// Server is a running embedded nats-server.
type Server struct {
	ns *server.Server
}

// Start starts the server and waits until it accepts connections.
func Start(o Options) (*Server, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("embeddednats: data dir: %w", err)
	}
	opts, err := serverOptions(o)
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embeddednats: %w", err)
	}
	ns.SetLoggerV2(logAdapter{o.Log}, false, false, false)
	go ns.Start()
	wait := o.ReadyTimeout
	if wait == 0 {
		wait = 30 * time.Second
	}
	if !ns.ReadyForConnections(wait) {
		ns.Shutdown()
		return nil, fmt.Errorf("embeddednats: not ready after %v (data dir %s)", wait, o.DataDir)
	}
	return &Server{ns: ns}, nil
}

func serverOptions(o Options) (*server.Options, error) {
	name := o.Name
	if name == "" {
		name = "comm-embedded"
	}
	opts := &server.Options{}
	if o.Auth != "" {
		if err := opts.ProcessConfigString(o.Auth); err != nil {
			return nil, fmt.Errorf("embeddednats: authorization: %w", err)
		}
	}
	opts.ServerName, opts.JetStream, opts.StoreDir, opts.NoSigs = name, true, o.DataDir, true
	opts.DontListen, opts.SyncAlways = o.Listen == "", o.SyncInterval <= 0
	if o.SyncInterval > 0 {
		opts.SyncInterval = o.SyncInterval
	}
	if o.Listen != "" {
		host, port, _ := net.SplitHostPort(o.Listen)
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("embeddednats: listen port %q: %w", port, err)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, p
	}
	if o.TLS != nil {
		opts.TLSConfig, opts.TLSTimeout = o.TLS, 2
	}
	if o.Cluster != nil {
		if err := clusterOptions(opts, o.Cluster); err != nil {
			return nil, err
		}
	}
	return opts, nil
}

func clusterOptions(opts *server.Options, c *Cluster) error {
	host, port, err := hostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("embeddednats: cluster listen port: %w", err)
	}
	opts.Cluster.Name, opts.Cluster.Host, opts.Cluster.Port, opts.Cluster.Advertise = c.Name, host, port, c.Advertise
	for _, r := range c.Routes {
		u, err := url.Parse(r)
		if err != nil {
			return fmt.Errorf("embeddednats: route %q: %w", r, err)
		}
		opts.Routes = append(opts.Routes, u)
	}
	return nil
}

// hostPort splits a listen address, port 0 becoming nats-server's random
// port.
func hostPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, err
	}
	if p == 0 {
		p = server.RANDOM_PORT
	}
	return host, p, nil
}

// Connect opens an in-process client connection (no TCP).
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.InProcessServer(s.ns), nats.Name("comm-in-process")}, opts...)
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("embeddednats: connect: %w", err)
	}
	return nc, nil
}

// ClientURL is the nats:// URL of the loopback listener, or "" if none.
func (s *Server) ClientURL() string {
	if s.ns.Addr() == nil {
		return ""
	}
	return s.ns.ClientURL()
}

// ClusterAddr is the address of the route listener, or "" if the server
// is not clustered.
func (s *Server) ClusterAddr() string {
	if a := s.ns.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

// Name is the server's name, as clients see it (nats.Conn.ConnectedServerName).
func (s *Server) Name() string { return s.ns.Name() }

// JetStreamIsLeader reports whether the server is the JetStream meta
// leader of its cluster.
func (s *Server) JetStreamIsLeader() bool { return s.ns.JetStreamIsLeader() }

// JetStreamIsCurrent reports whether the server's JetStream is in step
// with its cluster's meta leader.
func (s *Server) JetStreamIsCurrent() bool { return s.ns.JetStreamIsCurrent() }

// JetStreamClusterPeers lists, on the meta leader, the nodes it knows
// to be online with JetStream, which it may place replicas on; nil on
// other nodes.
func (s *Server) JetStreamClusterPeers() []string { return s.ns.JetStreamClusterPeers() }

// JetStreamIsStreamLeader reports whether the server leads stream, in
// account, in its cluster.
func (s *Server) JetStreamIsStreamLeader(account, stream string) bool {
	return s.ns.JetStreamIsStreamLeader(account, stream)
}

// JetStreamStepdownStream makes the server, if it leads stream in
// account, step down, so that another node is elected: for tests that
// need the leader elsewhere.
func (s *Server) JetStreamStepdownStream(account, stream string) error {
	if err := s.ns.JetStreamStepdownStream(account, stream); err != nil {
		return fmt.Errorf("embeddednats: step down %s: %w", stream, err)
	}
	return nil
}

// Shutdown stops the server and waits until it has stopped.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// logAdapter sends nats-server's log lines to zerolog.
type logAdapter struct{ log zerolog.Logger }

func (l logAdapter) Noticef(format string, v ...any) { l.log.Info().Msgf(format, v...) }
func (l logAdapter) Warnf(format string, v ...any)   { l.log.Warn().Msgf(format, v...) }
func (l logAdapter) Fatalf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l logAdapter) Errorf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l logAdapter) Debugf(format string, v ...any)  { l.log.Debug().Msgf(format, v...) }
func (l logAdapter) Tracef(format string, v ...any)  { l.log.Trace().Msgf(format, v...) }

// StreamLastSeqs is the last sequence of every stream on the server, in
// every account, by stream name (the monitoring view: no account's
// permissions apply).
func (s *Server) StreamLastSeqs() (map[string]uint64, error) {
	jsz, err := s.ns.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		return nil, fmt.Errorf("embeddednats: %w", err)
	}
	out := map[string]uint64{}
	for _, a := range jsz.AccountDetails {
		for _, st := range a.Streams {
			out[st.Name] = st.State.LastSeq
		}
	}
	return out, nil
}

// JetStreamAPITotal is the number of JetStream API requests this server
// has handled since it started, in every account (the monitoring view,
// jsz's api.total).
func (s *Server) JetStreamAPITotal() (uint64, error) {
	jsz, err := s.ns.Jsz(nil)
	if err != nil {
		return 0, fmt.Errorf("embeddednats: %w", err)
	}
	return jsz.API.Total, nil
}

// DisableJetStream turns JetStream off in account, as an outage of its
// streams would: for fault-injection tests.
func (s *Server) DisableJetStream(account string) error {
	acc, err := s.ns.LookupAccount(account)
	if err != nil {
		return fmt.Errorf("embeddednats: account %s: %w", account, err)
	}
	return acc.DisableJetStream()
}

// HasInterest reports whether account (nats-server's "$G" without
// accounts) has a subscription, local or across a route, matching
// subject: what NATS routes a message published there by.
func (s *Server) HasInterest(account, subject string) bool {
	acc, err := s.ns.LookupAccount(account)
	if err != nil {
		return false
	}
	return acc.SubscriptionInterest(subject)
}

// Subscriptions lists the subjects the client connections named name
// subscribe to, as the server holds them.
func (s *Server) Subscriptions(name string) ([]string, error) {
	cz, err := s.ns.Connz(&server.ConnzOptions{Subscriptions: true, Limit: 1 << 16})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range cz.Conns {
		if c.Name == name {
			out = append(out, c.Subs...)
		}
	}
	return out, nil
}

// Kick closes the server's side of the client connections named name, as
// a network fault would: their clients reconnect.
func (s *Server) Kick(name string) error {
	cz, err := s.ns.Connz(&server.ConnzOptions{Limit: 1 << 16})
	if err != nil {
		return err
	}
	for _, c := range cz.Conns {
		if c.Name == name {
			if err := s.ns.DisconnectClientByID(c.Cid); err != nil {
				return err
			}
		}
	}
	return nil
}
