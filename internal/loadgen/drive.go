package loadgen

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/commsec/communicator/clientsdk"
	"github.com/commsec/communicator/protocol"
)

// Limits of the driver.
const (
	StampSize   = 8 // the send time, UnixNano big-endian, heads each payload
	MaxPayload  = protocol.MaxPayload
	sendTimeout = 10 * time.Second // bound on one Send's wait for its verdict
	drainWait   = 10 * time.Second // bound on the wait for the last deliveries
)

// The send outcomes counted.
const (
	VAccepted = iota
	VRefused
	VTimeout
	VNoKey
	VOther
	NVerdicts
)

// VerdictNames name the outcomes, by index.
var VerdictNames = [NVerdicts]string{"accepted", "refused", "timeout", "no key", "other error"}

func verdictOf(err error) int {
	switch {
	case err == nil:
		return VAccepted
	case errors.Is(err, clientsdk.ErrRefused):
		return VRefused
	case errors.Is(err, context.DeadlineExceeded):
		return VTimeout
	case errors.Is(err, clientsdk.ErrNoKey):
		return VNoKey
	}
	return VOther
}

// DriveConfig says how to drive a fleet.
type DriveConfig struct {
	Rate     float64       // total messages/s over all senders; 0: each sends back to back
	Size     int           // payload bytes, at least StampSize
	Warmup   time.Duration // load before the measurement, not counted
	Duration time.Duration // the measurement
	Say      func(string, ...any)
}

// Driver runs the senders and receivers of a fleet. Sends stamped in
// [start, end) are measured; the others (warm-up) only show in the
// progress. A fleet may be driven again after Stop.
type Driver struct {
	f          *Fleet
	cfg        DriveConfig
	t0         time.Time
	start, end time.Time
	stop       chan struct{}

	sent, delivered atomic.Uint64 // every phase, for the progress lines
	acceptedAll     atomic.Uint64 // every phase
	accepted        atomic.Uint64 // measured sends accepted
	expected        atomic.Uint64 // copies those should reach
	copies          atomic.Uint64 // measured copies delivered
	verdicts        [NVerdicts]atomic.Uint64
	// E2E is the latency from send to delivery, Verdict from send to the
	// relay's verdict, of the measured messages.
	E2E, Verdict Histogram
	receivers    sync.WaitGroup
}

// NewDriver prepares a drive of f; Run starts it.
func NewDriver(f *Fleet, cfg DriveConfig) *Driver {
	if cfg.Say == nil {
		cfg.Say = func(string, ...any) {}
	}
	return &Driver{f: f, cfg: cfg, stop: make(chan struct{})}
}

// Run drives the load until the end of the measurement, then waits
// (bounded) for the measured messages still on their way. The receivers
// keep counting until Stop.
func (d *Driver) Run(ctx context.Context) {
	d.t0 = time.Now()
	d.start = d.t0.Add(d.cfg.Warmup)
	d.end = d.start.Add(d.cfg.Duration)
	for _, m := range d.f.Members {
		d.receivers.Go(func() { d.receive(m) })
	}
	stop := d.showProgress()
	defer stop()
	var senders sync.WaitGroup
	for _, m := range d.f.Members {
		senders.Go(func() { d.sendLoop(ctx, m) })
	}
	senders.Wait()
	Poll(ctx, drainWait, func() bool { return d.copies.Load() >= d.expected.Load() }, "")
}

// Stop ends the receivers and waits for them.
func (d *Driver) Stop() {
	close(d.stop)
	d.receivers.Wait()
}

// Accepted is the number of measured sends accepted; Expected the copies
// they should reach; Copies those delivered; AcceptedAll the accepted
// sends of every phase.
func (d *Driver) Accepted() uint64    { return d.accepted.Load() }
func (d *Driver) Expected() uint64    { return d.expected.Load() }
func (d *Driver) Copies() uint64      { return d.copies.Load() }
func (d *Driver) AcceptedAll() uint64 { return d.acceptedAll.Load() }

// Verdicts says how many measured sends ended in each outcome.
func (d *Driver) Verdicts() string {
	var parts []string
	for v, name := range VerdictNames {
		parts = append(parts, name+" "+strconv.FormatUint(d.verdicts[v].Load(), 10))
	}
	return strings.Join(parts, ", ")
}

// Unaccepted is the number of measured sends not accepted.
func (d *Driver) Unaccepted() uint64 {
	var n uint64
	for v := VAccepted + 1; v < NVerdicts; v++ {
		n += d.verdicts[v].Load()
	}
	return n
}

// sendLoop sends m's messages at its share of the rate (or back to back)
// until the end of the measurement.
func (d *Driver) sendLoop(ctx context.Context, m *Member) {
	var interval time.Duration
	if d.cfg.Rate > 0 {
		interval = time.Duration(float64(len(d.f.Members)) / d.cfg.Rate * float64(time.Second))
	}
	next := d.t0.Add(time.Duration(rand.Int64N(int64(interval) + 1))) // spread the senders' phases
	payload := make([]byte, d.cfg.Size)
	for i := range payload[StampSize:] {
		payload[StampSize+i] = byte(i)
	}
	for ctx.Err() == nil {
		if interval > 0 && !SleepUntil(ctx, next) {
			return
		}
		now := time.Now()
		if !now.Before(d.end) {
			return
		}
		next = next.Add(interval)
		if behind := now.Add(-interval); next.Before(behind) {
			next = behind // no catch-up burst after a stall
		}
		binary.BigEndian.PutUint64(payload, uint64(now.UnixNano()))
		sctx, cancel := context.WithTimeout(ctx, sendTimeout)
		err := m.Client.Send(sctx, m.Group, payload)
		cancel()
		d.record(now, time.Since(now), err, m)
	}
}

func (d *Driver) measured(at time.Time) bool { return !at.Before(d.start) && at.Before(d.end) }

func (d *Driver) record(at time.Time, took time.Duration, err error, m *Member) {
	d.sent.Add(1)
	v := verdictOf(err)
	if v == VAccepted {
		d.acceptedAll.Add(1)
	}
	if !d.measured(at) {
		return
	}
	d.verdicts[v].Add(1)
	d.Verdict.Record(took)
	if v == VAccepted {
		d.accepted.Add(1)
		d.expected.Add(uint64(m.GroupSize - 1))
	}
}

// receive records every delivery to m until Stop or until its client is
// closed.
func (d *Driver) receive(m *Member) {
	msgs := m.Client.Messages()
	for {
		select {
		case <-d.stop:
			return
		case msg, ok := <-msgs:
			if !ok {
				return
			}
			d.delivery(msg.Payload)
		}
	}
}

func (d *Driver) delivery(payload []byte) {
	now := time.Now()
	d.delivered.Add(1)
	if len(payload) < StampSize {
		return
	}
	at := time.Unix(0, int64(binary.BigEndian.Uint64(payload)))
	if d.measured(at) {
		d.copies.Add(1)
		d.E2E.Record(now.Sub(at))
	}
}

// showProgress prints a line a second until the returned stop is called.
func (d *Driver) showProgress() (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var lastSent, lastDelivered uint64
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				s, dl := d.sent.Load(), d.delivered.Load()
				d.cfg.Say("%5.0fs  %-7s  sent %9d (%6d/s)  delivered %9d (%6d/s)",
					now.Sub(d.t0).Seconds(), d.phase(now), s, s-lastSent, dl, dl-lastDelivered)
				lastSent, lastDelivered = s, dl
			}
		}
	}()
	return func() { close(done); <-finished }
}

func (d *Driver) phase(now time.Time) string {
	switch {
	case now.Before(d.start):
		return "warmup"
	case now.Before(d.end):
		return "measure"
	}
	return "drain"
}
