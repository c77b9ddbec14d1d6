package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The scratch stream of the raw measurements, deleted afterwards.
const (
	scratchStream        = "COMMLOAD_SCRATCH"
	scratchRate          = "commload.scratch.rate"
	scratchLatency       = "commload.scratch.latency"
	scratchPatternPrefix = "commload.scratch.pattern"
	maxRawMessages       = 10_000_000 // bound on the async-publish phase
)

// rawResult is raw JetStream on the same server: the async-publish rate,
// the publish→consume latency at a moderate rate, and the relay's storage
// pattern alone.
type rawResult struct {
	stored   uint64        // messages stored by the async-publish phase
	elapsed  time.Duration // from the first publish to the last ack
	latency  histogram
	consumed uint64
	latRate  float64
	pairs    uint64 // compare-and-swap + publish pairs of the pattern phase
	workers  int
	pairsIn  time.Duration
}

func (r *rawResult) rate() float64 { return float64(r.stored) / r.elapsed.Seconds() }

func (r *rawResult) pairRate() float64 { return float64(r.pairs) / r.pairsIn.Seconds() }

// measureRaw runs the raw phases on a scratch stream.
func measureRaw(ctx context.Context, js jetstream.JetStream, o *options) (*rawResult, error) {
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: scratchStream,
		Subjects: []string{scratchRate, scratchLatency, scratchPatternPrefix + ".*"}, Storage: jetstream.FileStorage,
		Replicas: 1})
	if err != nil {
		return nil, fmt.Errorf("raw: scratch stream: %w", err)
	}
	defer js.DeleteStream(context.Background(), scratchStream)
	r := &rawResult{latRate: o.rawRate}
	if err := r.publishRate(ctx, js, st, o); err != nil {
		return nil, err
	}
	if err := r.publishConsume(ctx, js, o); err != nil {
		return nil, err
	}
	return r, r.relayPattern(ctx, js, o)
}

// publishRate publishes asynchronously as fast as acks allow for
// o.rawDuration, then waits for the last acks.
func (r *rawResult) publishRate(ctx context.Context, js jetstream.JetStream, st jetstream.Stream, o *options) error {
	payload := make([]byte, o.size)
	start := time.Now()
	end := start.Add(o.rawDuration)
	for n := 0; n < maxRawMessages && ctx.Err() == nil && time.Now().Before(end); {
		if _, err := js.PublishAsync(scratchRate, payload); err != nil {
			waitAcks(js, time.Second) // stalled: at most 4096 pending
			continue
		}
		n++
	}
	if !waitAcks(js, 30*time.Second) {
		return errors.New("raw: acks of the async publishes did not all come within 30s")
	}
	r.elapsed = time.Since(start)
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("raw: %w", err)
	}
	r.stored = info.State.Msgs
	return nil
}

func waitAcks(js jetstream.JetStream, d time.Duration) bool {
	select {
	case <-js.PublishAsyncComplete():
		return true
	case <-time.After(d):
		return false
	}
}

// publishConsume publishes stamped messages at o.rawRate for
// o.rawDuration to a consumer that records each one's latency.
func (r *rawResult) publishConsume(ctx context.Context, js jetstream.JetStream, o *options) error {
	cons, err := js.OrderedConsumer(ctx, scratchStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{scratchLatency}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return fmt.Errorf("raw: consumer: %w", err)
	}
	var got atomic.Uint64
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if len(m.Data()) >= stampSize {
			r.latency.record(time.Since(time.Unix(0, int64(binary.BigEndian.Uint64(m.Data())))))
			got.Add(1)
		}
	})
	if err != nil {
		return fmt.Errorf("raw: consume: %w", err)
	}
	defer cc.Stop()
	sent := publishPaced(ctx, js, o)
	poll(ctx, drainWait, func() bool { return got.Load() >= sent }, "")
	waitAcks(js, 5*time.Second)
	r.consumed = got.Load()
	return nil
}

// publishPaced publishes o.rawRate stamped messages a second for
// o.rawDuration and returns how many it published.
func publishPaced(ctx context.Context, js jetstream.JetStream, o *options) uint64 {
	interval := time.Duration(float64(time.Second) / o.rawRate)
	total := int(o.rawRate * o.rawDuration.Seconds())
	start := time.Now()
	var sent uint64
	for i := 0; i < total && sleepUntil(ctx, start.Add(time.Duration(i)*interval)); i++ {
		payload := make([]byte, o.size) // the client may keep it until acknowledged
		binary.BigEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
		if _, err := js.PublishAsync(scratchLatency, payload); err == nil {
			sent++
		}
	}
	return sent
}

// relayPattern does, with one worker per client, only what the relay
// does to store a message: a synchronous publish that compares-and-swaps
// the last sequence of the worker's own subject. It isolates the storage
// cost from the rest of the path.
func (r *rawResult) relayPattern(ctx context.Context, js jetstream.JetStream, o *options) error {
	start := time.Now()
	end := start.Add(o.rawDuration)
	var pairs atomic.Uint64
	var wg sync.WaitGroup
	for w := range o.clients {
		wg.Go(func() { pairs.Add(patternWorker(ctx, js, w, end, o.size)) })
	}
	wg.Wait()
	r.pairs, r.workers, r.pairsIn = pairs.Load(), o.clients, time.Since(start)
	return nil
}

// patternWorker stores messages on its own subject by compare-and-swap
// until end, or until an error; it returns how many it stored.
func patternWorker(ctx context.Context, js jetstream.JetStream, w int, end time.Time, size int) uint64 {
	subject := fmt.Sprintf("%s.w%05d", scratchPatternPrefix, w)
	var last, n uint64
	for ; n < maxRawMessages && ctx.Err() == nil && time.Now().Before(end); n++ {
		m := nats.NewMsg(subject)
		m.Data = make([]byte, size)
		ack, err := js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(last))
		if err != nil {
			return n
		}
		last = ack.Sequence
	}
	return n
}
