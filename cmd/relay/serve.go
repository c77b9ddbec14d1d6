package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/internal/metrics"
	"github.com/commsec/communicator/internal/service"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/relay"
	"github.com/commsec/communicator/streams"
)

// shutdownTimeout bounds each step of a graceful shutdown.
const shutdownTimeout = 5 * time.Second

// serve runs the relay until ctx ends: the HTTP listener first (so that
// liveness answers during a long replay), then NATS, the replay and the
// partitions.
func serve(ctx context.Context, cfg *config, log zerolog.Logger) error {
	ksPub, err := readKeyserverPub(cfg.keyserverPub)
	if err != nil {
		return err
	}
	st := &readiness{}
	reg := metrics.NewRegistry()
	srv, err := service.Listen(service.Config{Addr: cfg.httpAddr, Metrics: reg, Ready: st.check, Log: log})
	if err != nil {
		return fmt.Errorf("--http %s: %w", cfg.httpAddr, err)
	}
	log.Info().Str("addr", srv.Addr()).Msg("http listening: /metrics /healthz /readyz")
	defer shutdownHTTP(srv, log)
	nc, err := service.ConnectNATS(ctx, cfg.natsURL, "comm-relay", cfg.natsCreds, log) // the name is the NATS role (package natsauth)
	if err != nil {
		return err
	}
	st.nc.Store(nc)
	defer drain(nc, log)
	log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS connected")
	return runRelay(ctx, nc, cfg, relay.Config{KeyserverKey: ksPub, Grace: cfg.grace, ID: cfg.id, Log: log, Metrics: reg,
		Streams: streams.Config{Replicas: cfg.replicas, Retention: cfg.retention}}, st, log)
}

func runRelay(ctx context.Context, nc *nats.Conn, cfg *config, rc relay.Config, st *readiness, log zerolog.Logger) error {
	r, err := relay.Start(ctx, nc, rc)
	if err != nil {
		return err
	}
	defer r.Close() // releases the partitions before the connection drains
	st.loaded.Store(true)
	log.Info().Str("id", r.ID()).Int("partitions", len(r.Owned())).Int("replicas", cfg.replicas).
		Str("retention", (*service.Duration)(&cfg.retention).String()).Dur("grace", cfg.grace).Msg("relay ready")
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

// readiness is /readyz: NATS connected and the log replayed.
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

// readKeyserverPub reads Pk_Ks, naming the flag if the file is wrong.
func readKeyserverPub(path string) ([32]byte, error) {
	data, err := keys.ReadFile(path)
	if err != nil {
		return [32]byte{}, fmt.Errorf("--keyserver-pub: %w", err)
	}
	pub, err := keys.DecodePublicKey(data, keys.KindKeyserverPublic)
	if err != nil {
		return [32]byte{}, fmt.Errorf("--keyserver-pub %s: %w", path, err)
	}
	return pub, nil
}
