package stack

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"path/filepath"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/internal/embeddednats"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/service"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/relay"
	"github.com/commsec/communicator/streams"
)

// relayID names the stack's relay in partition leases: the same on every
// start, so that it takes back its own partitions.
const relayID = "commstack-relay"

// listenHTTP starts /metrics, /healthz and /readyz first, so that liveness
// answers while the event log is replayed.
func (s *Stack) listenHTTP() error {
	srv, err := service.Listen(service.Config{Addr: s.cfg.HTTP, Metrics: s.reg, Ready: s.Ready, Log: s.log})
	if err != nil {
		return fmt.Errorf("stack: http %s: %w", s.cfg.HTTP, err)
	}
	s.http = srv
	s.onClose(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			s.log.Warn().Err(err).Msg("http shutdown")
		}
	})
	return nil
}

// startNATS starts the embedded server with the production accounts
// (package natsauth); the users' credentials live in DATA/creds, made on
// the first start.
func (s *Stack) startNATS() error {
	if err := checkFree(s.cfg.NATSListen); err != nil {
		return err
	}
	creds, created, err := natsauth.LoadOrCreate(s.CredsDir())
	if err != nil {
		return fmt.Errorf("stack: NATS credentials: %w", err)
	}
	s.creds, s.credsCreated = creds, created
	s.onClose(creds.Wipe)
	var extra []string
	if s.cfg.Scratch {
		if extra, err = s.scratchAccount(); err != nil {
			return err
		}
	}
	ns, err := embeddednats.Start(embeddednats.Options{
		DataDir: filepath.Join(s.cfg.DataDir, "nats"), Listen: s.cfg.NATSListen, SyncInterval: s.cfg.SyncInterval,
		Auth: natsauth.Config(creds.Users(), extra...),
		Name: "commstack", Log: quieter(s.log.With().Str("component", "nats").Logger()),
	})
	if err != nil {
		return fmt.Errorf("stack: NATS: %w", err)
	}
	s.nats = ns
	s.onClose(ns.Shutdown)
	return nil
}

// checkFree reports a taken NATS listen address at once: nats-server only
// logs it and is then not ready until a timeout.
func checkFree(addr string) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("stack: NATS listener: %w (another NATS server? choose another address, or none)", err)
	}
	return ln.Close()
}

// quieter raises log to warnings unless it is debugging: for nats-server's
// start-up banner, and the relay's line per partition (it owns all 64).
func quieter(log zerolog.Logger) zerolog.Logger {
	if l := log.GetLevel(); l > zerolog.DebugLevel {
		return log.Level(max(l, zerolog.WarnLevel))
	}
	return log
}

// scratchAccount makes the load tools' account, with a user that
// exists only in memory.
func (s *Stack) scratchAccount() ([]string, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("stack: scratch user: %w", err)
	}
	pub, _ := kp.PublicKey()
	s.scratch = nats.Nkey(pub, kp.Sign)
	return []string{natsauth.ScratchAccount(pub)}, nil
}

// connect opens an in-process connection for one part as its role,
// drained on Close.
func (s *Stack) connect(name string, role natsauth.Role) (*nats.Conn, error) {
	nc, err := s.nats.Connect(nats.Name(name), s.creds.Option(role))
	if err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	s.conns = append(s.conns, nc)
	s.onClose(func() {
		if err := service.DrainNATS(nc, shutdownTimeout); err != nil {
			s.log.Warn().Err(err).Str("connection", name).Msg("NATS shutdown")
		}
	})
	return nc, nil
}

func (s *Stack) startKeyserver(ctx context.Context) error {
	nc, err := s.connect("comm-keyserver", natsauth.Keyserver)
	if err != nil {
		return err
	}
	// K = 1 until package natsauth renders an account for every shard
	// of the accepted messages (issue 14): its accounts refuse more.
	k, err := keyserver.Start(ctx, nc, keyserver.Config{Key: s.keys.Keyserver, Operators: [][32]byte{s.keys.Operator},
		Streams: streams.Config{Shards: s.cfg.AcceptedShards}, Log: s.log, Metrics: s.reg})
	if err != nil {
		return err
	}
	s.keyserver = k
	s.onClose(k.Close)
	svc, err := k.Serve(nc)
	if err != nil {
		return err
	}
	s.onClose(func() {
		if err := svc.Stop(); err != nil {
			s.log.Warn().Err(err).Msg("stopping the admin API")
		}
	})
	return nil
}

func (s *Stack) startRelay(ctx context.Context) error {
	nc, err := s.connect("comm-relay", natsauth.Relay)
	if err != nil {
		return err
	}
	r, err := relay.Start(ctx, nc, relay.Config{KeyserverKey: s.keys.Keyserver.Public(), ID: relayID, Log: quieter(s.log), Metrics: s.reg})
	if err != nil {
		return err
	}
	s.relay = r
	s.onClose(r.Close)
	return nil
}

func (s *Stack) startGateway(ctx context.Context) error {
	nc, err := s.connect("comm-gateway", natsauth.Gateway)
	if err != nil {
		return err
	}
	g, err := gateway.Start(ctx, nc, gateway.Config{Listen: s.cfg.Gateway, Key: s.keys.Gateway,
		KeyserverKey: s.keys.Keyserver.Public(), Log: s.log, Metrics: s.reg})
	if err != nil {
		return fmt.Errorf("stack: gateway %s: %w", s.cfg.Gateway, err)
	}
	s.gateway = g
	s.onClose(g.Close)
	return nil
}

// logWhere tells the operator where everything is.
func (s *Stack) logWhere() {
	k := s.keys
	if len(k.Created) > 0 {
		s.log.Info().Strs("pairs", k.Created).Str("dir", k.Dir).Msg("created key pairs (first run); private keys are 0600")
	}
	if s.credsCreated {
		s.log.Info().Str("dir", s.CredsDir()).Msg("created the NATS users (first run): one nkey seed per role, 0600")
	}
	s.log.Info().Str("dir", s.cfg.DataDir).Str("keys", k.Dir).Str("jetstream", filepath.Join(s.cfg.DataDir, "nats")).
		Str("fsync", s.syncPolicy()).Msg("data directory")
	s.log.Info().Str("operator_key", k.Path("operator", ".key")).Str("keyserver_pub", k.Path("keyserver", ".pub")).
		Str("gateway_pub", k.Path("gateway", ".pub")).Msg("key files")
	s.log.Info().Str("listen", s.GatewayAddr()).Str("server_key", hexKey(k.Gateway.Public())).
		Str("keyserver_key", hexKey(k.Keyserver.Public())).Msg("gateway: clients connect here, pinning these keys")
	s.log.Info().Str("id", s.relay.ID()).Int("partitions", len(s.relay.Owned())).Msg("relay owns its partitions")
	s.log.Info().Str("addr", s.HTTPAddr()).Msg("http listening: /metrics /healthz /readyz")
	if url := s.NATSURL(); url != "" {
		s.log.Info().Str("url", url).Str("creds", s.CredsDir()).
			Str("try", fmt.Sprintf("ksctl --nats %s --nats-creds %s --operator-key %s list", url,
				natsauth.SeedFile(s.CredsDir(), natsauth.Admin), k.Path("operator", ".key"))).
			Msg("NATS listening on loopback for ksctl and the nats CLI; every connection authenticates (nkey files 0600)")
	} else {
		s.log.Info().Msg("NATS: in-process connections only (no listener)")
	}
	s.log.Info().Msg("stack ready")
}

func (s *Stack) syncPolicy() string {
	if s.cfg.SyncInterval > 0 {
		return "every " + s.cfg.SyncInterval.String()
	}
	return "always"
}

func hexKey(k [32]byte) string { return hex.EncodeToString(k[:]) }
