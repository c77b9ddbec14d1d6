package main

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/internal/metrics"
	"github.com/commsec/communicator/internal/service"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/relay"
	"github.com/commsec/communicator/streams"
)

// serve runs the relay until ctx ends: the HTTP listener first (so that
// liveness answers during a long replay), then NATS, the replay and the
// partitions.
func serve(ctx context.Context, cfg *config, log zerolog.Logger) error {
	ksPub, err := readKeyserverPub(cfg.keyserverPub)
	if err != nil {
		return err
	}
	st := &service.Readiness{}
	reg := metrics.NewRegistry()
	srv, err := service.Listen(service.Config{Addr: cfg.httpAddr, Metrics: reg, Ready: st.Check, Log: log})
	if err != nil {
		return fmt.Errorf("--http %s: %w", cfg.httpAddr, err)
	}
	log.Info().Str("addr", srv.Addr()).Msg("http listening: /metrics /healthz /readyz")
	defer service.ShutdownHTTP(srv, log)
	nc, err := service.ConnectNATS(ctx, cfg.nats(), "comm-relay", log) // the name is the NATS role (package natsauth)
	if err != nil {
		return err
	}
	st.NC.Store(nc)
	defer service.Drain(nc, log)
	log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS connected")
	return runRelay(ctx, nc, cfg, relay.Config{KeyserverKey: ksPub, Grace: cfg.grace, ID: cfg.id, Log: log, Metrics: reg,
		Streams: streams.Config{Replicas: cfg.replicas, Retention: cfg.retention}}, st, log)
}

func runRelay(ctx context.Context, nc *nats.Conn, cfg *config, rc relay.Config, st *service.Readiness, log zerolog.Logger) error {
	r, err := relay.Start(ctx, nc, rc)
	if err != nil {
		return err
	}
	defer r.Close() // releases the partitions before the connection drains
	st.JetStream.Store(r.JetStream())
	st.Loaded.Store(true)
	log.Info().Str("id", r.ID()).Int("partitions", len(r.Owned())).Int("replicas", cfg.replicas).
		Str("retention", (*service.Duration)(&cfg.retention).String()).Dur("grace", cfg.grace).Msg("relay ready")
	<-ctx.Done()
	log.Info().Msg("shutting down")
	st.Loaded.Store(false)
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

// nats is how the relay reaches NATS.
func (c *config) nats() service.NATSClient {
	return service.NATSClient{URL: c.natsURL, Creds: c.natsCreds, CA: c.natsCA}
}
