package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/internal/metrics"
	"github.com/commsec/communicator/internal/service"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

// serve runs the keyserver until ctx ends: the HTTP listener first (so
// that liveness answers during a long replay), then NATS, the replay and
// the admin API.
func serve(ctx context.Context, cfg *config, log zerolog.Logger) error {
	key, operators, err := cfg.loadKeys()
	if err != nil {
		return err
	}
	// The key is not wiped on return: an admin request still in flight
	// may sign with it until the process exits.
	st := &service.Readiness{}
	reg := metrics.NewRegistry()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "comm_keyserver_info", Help: "The keyserver's version (always 1).",
		ConstLabels: prometheus.Labels{"version": keyserver.Version}}, func() float64 { return 1 }))
	srv, err := service.Listen(service.Config{Addr: cfg.httpAddr, Metrics: reg, Ready: st.Check, Log: log})
	if err != nil {
		return fmt.Errorf("--http %s: %w", cfg.httpAddr, err)
	}
	log.Info().Str("addr", srv.Addr()).Msg("http listening: /metrics /healthz /readyz")
	defer service.ShutdownHTTP(srv, log)
	nc, err := service.ConnectNATS(ctx, cfg.nats(), "comm-keyserver", log)
	if err != nil {
		return err
	}
	st.NC.Store(nc)
	defer service.Drain(nc, log)
	log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS connected")
	return runKeyserver(ctx, nc, cfg, keyserver.Config{Key: key, Operators: operators, Log: log, Metrics: reg,
		Streams: streams.Config{Replicas: cfg.replicas, Retention: cfg.retention, Shards: streams.Shards(cfg.shards)}}, st, log)
}

func runKeyserver(ctx context.Context, nc *nats.Conn, cfg *config, kc keyserver.Config, st *service.Readiness, log zerolog.Logger) error {
	k, err := keyserver.Start(ctx, nc, kc)
	if err != nil {
		return err
	}
	defer k.Close()
	svc, err := k.Serve(nc)
	if err != nil {
		return err
	}
	if err := nc.FlushTimeout(service.ShutdownTimeout); err != nil { // the server has the admin API's subscriptions
		return fmt.Errorf("NATS flush: %w", err)
	}
	st.Loaded.Store(true)
	log.Info().Int("operators", len(kc.Operators)).Int("replicas", cfg.replicas).Str("retention", (*service.Duration)(&cfg.retention).String()).
		Int("accepted_shards", int(k.Shards())).Msg("keyserver ready")
	<-ctx.Done()
	log.Info().Msg("shutting down")
	st.Loaded.Store(false)
	if err := svc.Stop(); err != nil {
		log.Warn().Err(err).Msg("stopping the admin API")
	}
	return nil
}

// loadKeys reads the keyserver's private key and the operators' public
// keys, naming the flag of any file that is wrong.
func (c *config) loadKeys() (*keys.SigningKey, [][32]byte, error) {
	data, err := keys.ReadFile(c.keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--key: %w", err)
	}
	defer clear(data)
	key, err := keys.DecodeSigningKey(data, keys.KindKeyserverPrivate)
	if err != nil {
		return nil, nil, fmt.Errorf("--key %s: %w", c.keyFile, err)
	}
	ops, err := c.loadOperators()
	if err != nil {
		key.Wipe()
		return nil, nil, err
	}
	return key, ops, nil
}

func (c *config) loadOperators() ([][32]byte, error) {
	var ops [][32]byte
	for _, f := range c.operatorFiles {
		pub, err := readOperator(f)
		if err != nil {
			return nil, fmt.Errorf("--operator: %w", err)
		}
		ops = append(ops, pub)
	}
	if c.operatorsDir != "" {
		more, err := readOperatorDir(c.operatorsDir)
		if err != nil {
			return nil, fmt.Errorf("--operators %s: %w", c.operatorsDir, err)
		}
		ops = append(ops, more...)
	}
	slices.SortFunc(ops, func(a, b [32]byte) int { return slices.Compare(a[:], b[:]) })
	return slices.Compact(ops), nil
}

func readOperatorDir(dir string) ([][32]byte, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.pub"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, errors.New("no *.pub operator key files in it")
	}
	var ops [][32]byte
	for _, f := range files {
		pub, err := readOperator(f)
		if err != nil {
			return nil, err
		}
		ops = append(ops, pub)
	}
	return ops, nil
}

func readOperator(path string) ([32]byte, error) {
	data, err := keys.ReadFile(path)
	if err != nil {
		return [32]byte{}, err
	}
	pub, err := keys.DecodePublicKey(data, keys.KindOperatorPublic)
	if err != nil {
		return [32]byte{}, fmt.Errorf("%s: %w", path, err)
	}
	return pub, nil
}

// nats is how the keyserver reaches NATS.
func (c *config) nats() service.NATSClient {
	return service.NATSClient{URL: c.natsURL, Creds: c.natsCreds, CA: c.natsCA}
}
