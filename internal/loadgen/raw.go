package loadgen

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The scratch stream of the raw measurements, deleted by Raw.Close.
const (
	scratchStream        = "LOADGEN_SCRATCH"
	scratchRate          = "loadgen.scratch.rate"
	scratchLatency       = "loadgen.scratch.latency"
	scratchPatternPrefix = "loadgen.scratch.pattern"
	maxRawMessages       = 10_000_000 // bound on a publishing phase
)

// Raw measures raw JetStream on a scratch file-storage stream of the
// server js talks to: what the Communicator's figures are set beside.
type Raw struct {
	js   jetstream.JetStream
	st   jetstream.Stream
	size int // payload bytes
	// patternRound makes each RelayPattern use fresh subjects.
	patternRound atomic.Int64
}

// NewRaw creates the scratch stream; size is the payload of every phase.
func NewRaw(ctx context.Context, js jetstream.JetStream, size int) (*Raw, error) {
	return NewRawReplicas(ctx, js, size, 1)
}

// NewRawReplicas is NewRaw with a scratch stream of that many replicas:
// on a cluster, the same replication as the streams measured beside it.
func NewRawReplicas(ctx context.Context, js jetstream.JetStream, size, replicas int) (*Raw, error) {
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: scratchStream,
		Subjects: []string{scratchRate, scratchLatency, scratchPatternPrefix + ".>"}, Storage: jetstream.FileStorage,
		Replicas: replicas, AllowAtomicPublish: true})
	if err != nil {
		return nil, fmt.Errorf("loadgen: raw: scratch stream: %w", err)
	}
	return &Raw{js: js, st: st, size: size}, nil
}

// Close deletes the scratch stream.
func (r *Raw) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.js.DeleteStream(ctx, scratchStream)
}

// Rate is the result of a publishing phase.
type Rate struct {
	Stored  uint64        // messages stored
	Elapsed time.Duration // from the first publish to the last ack
}

// PerSecond is the rate of the phase.
func (r Rate) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Stored) / r.Elapsed.Seconds()
}

// PublishRate publishes asynchronously as fast as acks allow for d (at
// most 4096 unacknowledged), then waits for the last acks.
func (r *Raw) PublishRate(ctx context.Context, d time.Duration) (Rate, error) {
	first, err := r.lastSeq(ctx)
	if err != nil {
		return Rate{}, err
	}
	payload := make([]byte, r.size)
	start := time.Now()
	end := start.Add(d)
	for n := 0; n < maxRawMessages && ctx.Err() == nil && time.Now().Before(end); {
		if _, err := r.js.PublishAsync(scratchRate, payload); err != nil {
			waitAcks(r.js, time.Second) // stalled: 4096 pending
			continue
		}
		n++
	}
	if !waitAcks(r.js, 30*time.Second) {
		return Rate{}, errors.New("loadgen: raw: acks of the async publishes did not all come within 30s")
	}
	elapsed := time.Since(start)
	last, err := r.lastSeq(ctx)
	return Rate{Stored: last - first, Elapsed: elapsed}, err
}

// PublishBatches publishes n messages of size bytes as atomic batches of
// at most batch messages, the commits asynchronous with at most two
// unacknowledged, and waits for their acks: the storage cost of n writes
// made as the keyserver makes an epoch's bundles.
func (r *Raw) PublishBatches(ctx context.Context, n, size, batch int) (Rate, error) {
	first, err := r.lastSeq(ctx)
	if err != nil {
		return Rate{}, err
	}
	payload := make([]byte, size)
	nc := r.js.Conn()
	var acks []jetstream.PubAckFuture
	start := time.Now()
	for b := 0; b*batch < n; b++ {
		if len(acks) == 2 {
			if err := waitAck(ctx, acks[0]); err != nil {
				return Rate{}, err
			}
			acks = acks[1:]
		}
		id := fmt.Sprintf("loadgen-%d-%d", start.UnixNano(), b)
		size := min(batch, n-b*batch)
		for i := 1; i <= size; i++ {
			m := &nats.Msg{Subject: scratchRate, Data: payload, Header: nats.Header{}}
			m.Header.Set("Nats-Batch-Id", id)
			m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i))
			if i < size {
				err = nc.PublishMsg(m)
			} else {
				m.Header.Set("Nats-Batch-Commit", "1")
				var f jetstream.PubAckFuture
				f, err = r.js.PublishMsgAsync(m)
				acks = append(acks, f)
			}
			if err != nil {
				return Rate{}, fmt.Errorf("loadgen: raw: batch publish: %w", err)
			}
		}
	}
	for _, f := range acks {
		if err := waitAck(ctx, f); err != nil {
			return Rate{}, err
		}
	}
	elapsed := time.Since(start)
	last, err := r.lastSeq(ctx)
	return Rate{Stored: last - first, Elapsed: elapsed}, err
}

func waitAck(ctx context.Context, f jetstream.PubAckFuture) error {
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return fmt.Errorf("loadgen: raw: batch not stored: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Raw) lastSeq(ctx context.Context) (uint64, error) {
	info, err := r.st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("loadgen: raw: %w", err)
	}
	return info.State.LastSeq, nil
}

func waitAcks(js jetstream.JetStream, d time.Duration) bool {
	select {
	case <-js.PublishAsyncComplete():
		return true
	case <-time.After(d):
		return false
	}
}

// PublishConsume publishes stamped messages at rate a second for d to an
// ordered consumer that records each one's latency in h; it returns how
// many were consumed.
func (r *Raw) PublishConsume(ctx context.Context, rate float64, d time.Duration, h *Histogram) (uint64, error) {
	cons, err := r.js.OrderedConsumer(ctx, scratchStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{scratchLatency}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return 0, fmt.Errorf("loadgen: raw: consumer: %w", err)
	}
	var got atomic.Uint64
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if len(m.Data()) >= StampSize {
			h.Record(time.Since(time.Unix(0, int64(binary.BigEndian.Uint64(m.Data())))))
			got.Add(1)
		}
	})
	if err != nil {
		return 0, fmt.Errorf("loadgen: raw: consume: %w", err)
	}
	defer cc.Stop()
	sent := r.publishPaced(ctx, rate, d)
	Poll(ctx, drainWait, func() bool { return got.Load() >= sent }, "")
	waitAcks(r.js, 5*time.Second)
	return got.Load(), nil
}

// publishPaced publishes rate stamped messages a second for d and returns
// how many it published.
func (r *Raw) publishPaced(ctx context.Context, rate float64, d time.Duration) uint64 {
	interval := time.Duration(float64(time.Second) / rate)
	total := min(int(rate*d.Seconds()), maxRawMessages)
	start := time.Now()
	var sent uint64
	for i := 0; i < total && SleepUntil(ctx, start.Add(time.Duration(i)*interval)); i++ {
		payload := make([]byte, r.size) // the client may keep it until acknowledged
		binary.BigEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
		if _, err := r.js.PublishAsync(scratchLatency, payload); err == nil {
			sent++
		}
	}
	return sent
}

// Pattern is the result of RelayPattern.
type Pattern struct {
	Stores  uint64
	Workers int
	Elapsed time.Duration
}

// PerSecond is the rate of the phase.
func (p Pattern) PerSecond() float64 { return float64(p.Stores) / p.Elapsed.Seconds() }

// RelayPattern does, with workers concurrent workers for d, only what the
// relay does to store a message: a synchronous publish that
// compares-and-swaps the last sequence of the worker's own subject. It
// isolates the storage cost from the rest of the path.
func (r *Raw) RelayPattern(ctx context.Context, workers int, d time.Duration) Pattern {
	start := time.Now()
	end := start.Add(d)
	round := r.patternRound.Add(1)
	var stores atomic.Uint64
	var wg sync.WaitGroup
	for w := range workers {
		subject := fmt.Sprintf("%s.r%d.w%05d", scratchPatternPrefix, round, w)
		wg.Go(func() { stores.Add(r.patternWorker(ctx, subject, end)) })
	}
	wg.Wait()
	return Pattern{Stores: stores.Load(), Workers: workers, Elapsed: time.Since(start)}
}

// patternWorker stores messages on its own subject by compare-and-swap
// until end, or until an error; it returns how many it stored.
func (r *Raw) patternWorker(ctx context.Context, subject string, end time.Time) uint64 {
	var last, n uint64
	for ; n < maxRawMessages && ctx.Err() == nil && time.Now().Before(end); n++ {
		m := nats.NewMsg(subject)
		m.Data = make([]byte, r.size)
		ack, err := r.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(last))
		if err != nil {
			return n
		}
		last = ack.Sequence
	}
	return n
}
