package main

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/commsec/communicator/clientsdk"
	"github.com/commsec/communicator/protocol"
)

const (
	stampSize   = 8 // the send time, UnixNano big-endian, heads each payload
	maxPayload  = protocol.MaxPayload
	sendTimeout = 10 * time.Second // bound on one Send's wait for its verdict
	drainWait   = 10 * time.Second // bound on the wait for the last deliveries
)

// The send outcomes counted.
const (
	vAccepted = iota
	vRefused
	vTimeout
	vNoKey
	vOther
	nVerdicts
)

var verdictNames = [nVerdicts]string{"accepted", "refused", "timeout", "no key", "other error"}

func verdictOf(err error) int {
	switch {
	case err == nil:
		return vAccepted
	case errors.Is(err, clientsdk.ErrRefused):
		return vRefused
	case errors.Is(err, context.DeadlineExceeded):
		return vTimeout
	case errors.Is(err, clientsdk.ErrNoKey):
		return vNoKey
	}
	return vOther
}

// driver runs the senders and receivers. Sends stamped in [start, end)
// are measured; the others (warm-up) only show in the progress.
type driver struct {
	f          *fleet
	o          *options
	say        func(string, ...any) // progress lines
	t0         time.Time
	start, end time.Time

	sent, delivered atomic.Uint64 // every phase, for the progress lines
	acceptedAll     atomic.Uint64 // every phase, for the writes per message
	accepted        atomic.Uint64 // measured sends accepted
	expected        atomic.Uint64 // copies those should reach
	copies          atomic.Uint64 // measured copies delivered
	verdicts        [nVerdicts]atomic.Uint64
	e2e, verdict    histogram // send → delivery, send → verdict
	receivers       sync.WaitGroup
}

func newDriver(f *fleet, o *options, say func(string, ...any)) *driver {
	d := &driver{f: f, o: o, say: say, t0: time.Now()}
	d.start = d.t0.Add(o.warmup)
	d.end = d.start.Add(o.duration)
	return d
}

// run drives the load until the end of the measurement, then waits
// (bounded) for the measured messages still on their way.
func (d *driver) run(ctx context.Context) {
	for _, m := range d.f.members {
		d.receivers.Go(func() { d.receive(m) })
	}
	stop := d.showProgress()
	defer stop()
	var senders sync.WaitGroup
	for _, m := range d.f.members {
		senders.Go(func() { d.sendLoop(ctx, m) })
	}
	senders.Wait()
	poll(ctx, drainWait, func() bool { return d.copies.Load() >= d.expected.Load() }, "")
}

// waitReceivers waits for the receivers, which end when their clients
// are closed.
func (d *driver) waitReceivers() { d.receivers.Wait() }

// sendLoop sends m's messages at its share of the rate (or back to back)
// until the end of the measurement.
func (d *driver) sendLoop(ctx context.Context, m *member) {
	var interval time.Duration
	if d.o.rate > 0 {
		interval = time.Duration(float64(len(d.f.members)) / d.o.rate * float64(time.Second))
	}
	next := d.t0.Add(time.Duration(rand.Int64N(int64(interval) + 1))) // spread the senders' phases
	payload := make([]byte, d.o.size)
	for i := range payload[stampSize:] {
		payload[stampSize+i] = byte(i)
	}
	for ctx.Err() == nil {
		if interval > 0 && !sleepUntil(ctx, next) {
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
		err := m.client.Send(sctx, m.group, payload)
		cancel()
		d.record(now, time.Since(now), err, m)
	}
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	wait := time.Until(t)
	if wait <= 0 {
		return true
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (d *driver) measured(at time.Time) bool { return !at.Before(d.start) && at.Before(d.end) }

func (d *driver) record(at time.Time, took time.Duration, err error, m *member) {
	d.sent.Add(1)
	v := verdictOf(err)
	if v == vAccepted {
		d.acceptedAll.Add(1)
	}
	if !d.measured(at) {
		return
	}
	d.verdicts[v].Add(1)
	d.verdict.record(took)
	if v == vAccepted {
		d.accepted.Add(1)
		d.expected.Add(uint64(m.groupSize - 1))
	}
}

// receive records every delivery to m until its client is closed.
func (d *driver) receive(m *member) {
	for msg := range m.client.Messages() {
		now := time.Now()
		d.delivered.Add(1)
		if len(msg.Payload) < stampSize {
			continue
		}
		at := time.Unix(0, int64(binary.BigEndian.Uint64(msg.Payload)))
		if d.measured(at) {
			d.copies.Add(1)
			d.e2e.record(now.Sub(at))
		}
	}
}

// showProgress prints a line a second until the returned stop is called.
func (d *driver) showProgress() (stop func()) {
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
				d.say("%5.0fs  %-7s  sent %9d (%6d/s)  delivered %9d (%6d/s)",
					now.Sub(d.t0).Seconds(), d.phase(now), s, s-lastSent, dl, dl-lastDelivered)
				lastSent, lastDelivered = s, dl
			}
		}
	}()
	return func() { close(done); <-finished }
}

func (d *driver) phase(now time.Time) string {
	switch {
	case now.Before(d.start):
		return "warmup"
	case now.Before(d.end):
		return "measure"
	}
	return "drain"
}
