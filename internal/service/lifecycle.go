package service

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/internal/jsprobe"
)

// ShutdownTimeout bounds each step of a service's graceful shutdown.
const ShutdownTimeout = 5 * time.Second

// Readiness is a service's /readyz: NATS connected, JetStream reachable
// through it, and the event log replayed. Store the connection in NC once
// it is made, the probe of the connection in JetStream once the service
// has one, and set Loaded while the service serves.
type Readiness struct {
	NC        atomic.Pointer[nats.Conn]
	JetStream atomic.Pointer[jsprobe.Probe]
	Loaded    atomic.Bool
}

// Check says why the service is not ready, or nil.
func (r *Readiness) Check() error {
	nc := r.NC.Load()
	if nc == nil {
		return errors.New("connecting to NATS")
	}
	if err := NATSReady(nc); err != nil {
		return err
	}
	if p := r.JetStream.Load(); p != nil {
		if err := p.Ready(); err != nil {
			return err
		}
	}
	if !r.Loaded.Load() {
		return errors.New("replaying the event log")
	}
	return nil
}

// ShutdownHTTP stops srv within ShutdownTimeout, logging a failure.
func ShutdownHTTP(srv *Server, log zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn().Err(err).Msg("http shutdown")
	}
}

// Drain drains nc within ShutdownTimeout, logging a failure.
func Drain(nc *nats.Conn, log zerolog.Logger) {
	if err := DrainNATS(nc, ShutdownTimeout); err != nil {
		log.Warn().Err(err).Msg("NATS shutdown")
	}
}
