package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/internal/metrics"
	"github.com/commsec/communicator/internal/service"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

// shutdownTimeout bounds each step of a graceful shutdown.
const shutdownTimeout = 5 * time.Second

// serve runs the gateway until ctx ends: the HTTP listener first (so that
// liveness answers during a long replay), then NATS, the replay and the
// client listener.
func serve(ctx context.Context, cfg *config, log zerolog.Logger) error {
	key, ksPub, err := cfg.loadKeys()
	if err != nil {
		return err
	}
	defer key.Wipe() // after the gateway has closed: no handshake signs any more
	st := &readiness{}
	reg := metrics.NewRegistry()
	srv, err := service.Listen(service.Config{Addr: cfg.httpAddr, Metrics: reg, Ready: st.check, Log: log})
	if err != nil {
		return fmt.Errorf("--http %s: %w", cfg.httpAddr, err)
	}
	log.Info().Str("addr", srv.Addr()).Msg("http listening: /metrics /healthz /readyz")
	defer shutdownHTTP(srv, log)
	nc, err := service.ConnectNATS(ctx, cfg.natsURL, "comm-gateway", cfg.natsCreds, log)
	if err != nil {
		return err
	}
	st.nc.Store(nc)
	defer drain(nc, log)
	log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS connected")
	return runGateway(ctx, nc, cfg, gateway.Config{
		Listen: cfg.listen, Key: key, KeyserverKey: ksPub, MaxHandshakes: cfg.maxHandshakes, QueueSize: cfg.queue,
		IdleTimeout: cfg.idleTimeout, Log: log, Metrics: reg,
		Streams: streams.Config{Replicas: cfg.replicas, Retention: cfg.retention},
	}, st, log)
}

func runGateway(ctx context.Context, nc *nats.Conn, cfg *config, gc gateway.Config, st *readiness, log zerolog.Logger) error {
	g, err := gateway.Start(ctx, nc, gc)
	var listenErr *net.OpError
	if errors.As(err, &listenErr) && listenErr.Op == "listen" {
		return fmt.Errorf("--listen %s: %w", cfg.listen, err)
	}
	if err != nil {
		return err
	}
	defer g.Close() // saves the cursors before the connection drains
	st.loaded.Store(true)
	pub := gc.Key.Public()
	log.Info().Str("listen", g.Addr().String()).Str("server_key", hex.EncodeToString(pub[:])).Int("replicas", cfg.replicas).
		Str("retention", (*service.Duration)(&cfg.retention).String()).Msg("gateway ready")
	<-ctx.Done()
	log.Info().Msg("shutting down")
	st.loaded.Store(false)
	return nil
}

func shutdownHTTP(srv *service.Server, log zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn().Err(err).Msg("http shutdown")
	}
}

func drain(nc *nats.Conn, log zerolog.Logger) {
	if err := service.DrainNATS(nc, shutdownTimeout); err != nil {
		log.Warn().Err(err).Msg("NATS shutdown")
	}
}

// readiness is /readyz: NATS connected, the log replayed and the client
// listener open.
type readiness struct {
	nc     atomic.Pointer[nats.Conn]
	loaded atomic.Bool
}

func (r *readiness) check() error {
	nc := r.nc.Load()
	if nc == nil {
		return errors.New("connecting to NATS")
	}
	if err := service.NATSReady(nc); err != nil {
		return err
	}
	if !r.loaded.Load() {
		return errors.New("replaying the event log")
	}
	return nil
}

// loadKeys reads Sk_S and Pk_Ks, naming the flag of any file that is wrong.
func (c *config) loadKeys() (*keys.SigningKey, [32]byte, error) {
	data, err := keys.ReadFile(c.keyFile)
	if err != nil {
		return nil, [32]byte{}, fmt.Errorf("--key: %w", err)
	}
	defer clear(data)
	key, err := keys.DecodeSigningKey(data, keys.KindServerPrivate)
	if err != nil {
		return nil, [32]byte{}, fmt.Errorf("--key %s: %w", c.keyFile, err)
	}
	pubData, err := keys.ReadFile(c.keyserverPub)
	if err != nil {
		key.Wipe()
		return nil, [32]byte{}, fmt.Errorf("--keyserver-pub: %w", err)
	}
	pub, err := keys.DecodePublicKey(pubData, keys.KindKeyserverPublic)
	if err != nil {
		key.Wipe()
		return nil, [32]byte{}, fmt.Errorf("--keyserver-pub %s: %w", c.keyserverPub, err)
	}
	return key, pub, nil
}
