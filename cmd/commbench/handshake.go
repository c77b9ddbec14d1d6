package main

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/commsec/communicator/internal/loadgen"
	"github.com/commsec/communicator/internal/stack"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol/handshake"
	"github.com/commsec/communicator/protocol/keys"
)

// primitiveWindows is how many timing windows each side of the bound
// gets, half before the load and half after.
const primitiveWindows = 200

// handshake measures complete handshakes through the gateway: many
// goroutines, each a registered client that dials over TCP, runs the
// handshake until the server's Ready frame verifies, and closes, again
// and again. The bound is the primitives of one client side plus one
// server side run on every core at once (parallelPrimitives), since the
// clients share the machine's cores with the gateway.
func (r *runner) handshake(ctx context.Context) error {
	s, err := r.ensureStack(ctx)
	if err != nil {
		return err
	}
	ids, err := registerIdentities(ctx, s, r.p.hsClients, "hs-")
	if err != nil {
		return err
	}
	before, err := r.handshakeBound()
	if err != nil {
		return err
	}
	hs := r.driveHandshakes(ctx, s, ids)
	after, err := r.handshakeBound()
	if err != nil {
		return err
	}
	r.reportHandshakes(hs, handshakeBound{perSec: max(before.perSec, after.perSec),
		alone: primitiveTimes{client: min(before.alone.client, after.alone.client), server: min(before.alone.server, after.alone.server)}})
	return hs.err()
}

// handshakeBound is the primitives' rate on all cores at once, and each
// side's time on one core alone (shown beside it).
type handshakeBound struct {
	perSec float64
	alone  primitiveTimes
}

// handshakeBound measures the bound once; the figure keeps the best of a
// measurement before the drive and one after it.
func (r *runner) handshakeBound() (handshakeBound, error) {
	alone, err := timePrimitives(primitiveWindows / 2)
	if err != nil {
		return handshakeBound{}, err
	}
	perSec, err := parallelPrimitives(r.p.hsBoundDuration)
	return handshakeBound{perSec: perSec, alone: alone}, err
}

// registerIdentities registers n fresh clients, in no group.
func registerIdentities(ctx context.Context, s *stack.Stack, n int, prefix string) ([]*keys.ClientIdentity, error) {
	ids := make([]*keys.ClientIdentity, n)
	regs := make([]keyserver.Registration, n)
	for i := range ids {
		id, err := keys.GenerateClientIdentity(nil)
		if err != nil {
			return nil, err
		}
		ids[i] = id
		regs[i] = keyserver.Registration{Public: id.Public(), Name: fmt.Sprintf("%s%05d", prefix, i)}
	}
	if err := s.Keyserver().RegisterClients(ctx, keyserver.Actor{}, regs); err != nil {
		return nil, fmt.Errorf("registering clients: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return ids, s.Sync(sctx)
}

// handshakeLoad counts the handshakes of the measured window.
type handshakeLoad struct {
	start, end time.Time
	done       atomic.Uint64 // every phase, for the progress
	measured   atomic.Uint64
	failed     atomic.Uint64
	firstErr   atomic.Pointer[error]
	latency    loadgen.Histogram // dial to verified Ready, measured window
	clients    int
}

func (h *handshakeLoad) err() error {
	if p := h.firstErr.Load(); p != nil && h.measured.Load() == 0 {
		return *p
	}
	return nil
}

func (r *runner) driveHandshakes(ctx context.Context, s *stack.Stack, ids []*keys.ClientIdentity) *handshakeLoad {
	h := &handshakeLoad{clients: len(ids)}
	h.start = time.Now().Add(r.p.hsWarmup)
	h.end = h.start.Add(r.p.hsDuration)
	var last uint64
	stop := r.progress(func() string {
		n := h.done.Load()
		defer func() { last = n }()
		return fmt.Sprintf("handshakes %8d (%5d/s), failed %d", n, n-last, h.failed.Load())
	})
	defer stop()
	cfg := handshake.ClientConfig{ServerKey: s.Keys().Gateway.Public(), Timeout: 10 * time.Second}
	addr := s.GatewayAddr()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() { h.client(ctx, addr, cfg, id.Sig) })
	}
	wg.Wait()
	return h
}

// client handshakes again and again until the end of the measurement
// (and at most a million times).
func (h *handshakeLoad) client(ctx context.Context, addr string, cfg handshake.ClientConfig, id *keys.SigningKey) {
	cfg.Identity = id
	d := net.Dialer{Timeout: 10 * time.Second}
	for i := 0; i < 1_000_000 && ctx.Err() == nil; i++ {
		t := time.Now()
		if !t.Before(h.end) {
			return
		}
		err := handshakeOnce(ctx, &d, addr, cfg)
		h.count(t, time.Since(t), err)
	}
}

func handshakeOnce(ctx context.Context, d *net.Dialer, addr string, cfg handshake.ClientConfig) error {
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	conn, err := handshake.Client(nc, cfg)
	if err != nil {
		return err
	}
	return conn.Close()
}

func (h *handshakeLoad) count(at time.Time, took time.Duration, err error) {
	if err != nil {
		h.failed.Add(1)
		h.firstErr.CompareAndSwap(nil, &err)
		return
	}
	h.done.Add(1)
	if !at.Before(h.start) && at.Before(h.end) {
		h.measured.Add(1)
		h.latency.Record(took)
	}
}

func (r *runner) reportHandshakes(h *handshakeLoad, b handshakeBound) {
	procs := runtime.GOMAXPROCS(0)
	rate := float64(h.measured.Load()) / r.p.hsDuration.Seconds()
	r.add(newRow(fmt.Sprintf("handshakes/s through the gateway, %d concurrent TCP clients", h.clients),
		perSec(rate), fmt.Sprintf("%s client + server primitives on %d cores at once", perSec(b.perSec), procs),
		rate/b.perSec, atLeast(0.8)))
	note := fmt.Sprintf("handshake: %d measured in %v; dial → Ready verified %s; failed %d", h.measured.Load(), r.p.hsDuration,
		h.latency.Quantiles(), h.failed.Load())
	if p := h.firstErr.Load(); p != nil {
		note += fmt.Sprintf(" (first: %v)", *p)
	}
	alone := float64(procs) / (b.alone.client + b.alone.server).Seconds()
	r.note("%s. The bound runs the primitives of one client and one server side (X25519 keygen + ECDH, Ed25519 sign + verify, "+
		"SHA-256 transcript, HKDF, HMAC of Ready) on every core at once: clients and gateway share the machine. On one core "+
		"alone they take %s (client) + %s (server); %d cores × that would be %s", note, us(b.alone.client), us(b.alone.server),
		procs, perSec(alone))
}

func us(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond)) }
