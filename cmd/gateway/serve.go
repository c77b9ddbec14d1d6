package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/internal/metrics"
	"github.com/commsec/communicator/internal/service"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

// serve runs the gateway until ctx ends: the HTTP listener first (so that
// liveness answers during a long replay), then NATS, the replay and the
// client listener.
func serve(ctx context.Context, cfg *config, log zerolog.Logger) error {
	key, ksPub, err := cfg.loadKeys()
	if err != nil {
		return err
	}
	defer key.Wipe() // after the gateway has closed: no handshake signs any more
	st := &service.Readiness{}
	reg := metrics.NewRegistry()
	srv, err := service.Listen(service.Config{Addr: cfg.httpAddr, Metrics: reg, Ready: st.Check, Log: log})
	if err != nil {
		return fmt.Errorf("--http %s: %w", cfg.httpAddr, err)
	}
	log.Info().Str("addr", srv.Addr()).Msg("http listening: /metrics /healthz /readyz")
	defer service.ShutdownHTTP(srv, log)
	nc, err := service.ConnectNATS(ctx, cfg.nats(), "comm-gateway", log)
	if err != nil {
		return err
	}
	st.NC.Store(nc)
	defer service.Drain(nc, log)
	log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS connected")
	return runGateway(ctx, nc, cfg, gateway.Config{
		Listen: cfg.listen, Name: cfg.name, Key: key, KeyserverKey: ksPub, MaxHandshakes: cfg.maxHandshakes, MaxHandshakesPerSource: cfg.perSource, M1Timeout: cfg.m1Timeout, QueueSize: cfg.queue,
		IdleTimeout: cfg.idleTimeout, Log: log, Metrics: reg,
		Streams: streams.Config{Replicas: cfg.replicas, Retention: cfg.retention},
	}, st, log)
}

func runGateway(ctx context.Context, nc *nats.Conn, cfg *config, gc gateway.Config, st *service.Readiness, log zerolog.Logger) error {
	g, err := gateway.Start(ctx, nc, gc)
	var listenErr *net.OpError
	if errors.As(err, &listenErr) && listenErr.Op == "listen" {
		return fmt.Errorf("--listen %s: %w", cfg.listen, err)
	}
	if err != nil {
		return err
	}
	defer g.Close() // saves the cursors before the connection drains
	st.JetStream.Store(g.JetStream())
	st.Loaded.Store(true)
	pub := gc.Key.Public()
	log.Info().Str("listen", g.Addr().String()).Str("server_key", hex.EncodeToString(pub[:])).Int("replicas", cfg.replicas).
		Str("retention", (*service.Duration)(&cfg.retention).String()).Msg("gateway ready")
	<-ctx.Done()
	log.Info().Msg("shutting down")
	st.Loaded.Store(false)
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

// nats is how the gateway reaches NATS.
func (c *config) nats() service.NATSClient {
	return service.NATSClient{URL: c.natsURL, Creds: c.natsCreds, CA: c.natsCA}
}
