package loadgen

import (
	"strconv"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/internal/natstest"
)

// TestPublishBatchesStoresEveryMessage: n messages in batches of 4, the
// last one short, are all stored, each batch committed as a whole.
func TestPublishBatchesStoresEveryMessage(t *testing.T) {
	raw := newTestRaw(t, 64)
	for _, n := range []int{1, 4, 10} {
		rate, err := raw.PublishBatches(t.Context(), n, 64, 4)
		if err != nil {
			t.Fatalf("%d messages: %v", n, err)
		}
		if rate.Stored != uint64(n) || rate.Elapsed <= 0 {
			t.Fatalf("%d messages published: %d stored in %v", n, rate.Stored, rate.Elapsed)
		}
	}
	m, err := raw.st.GetLastMsgForSubject(t.Context(), scratchRate)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("Nats-Batch-Sequence") != "2" || m.Header.Get("Nats-Batch-Commit") != "1" {
		t.Fatalf("the last message is not its short batch's commit: %v", m.Header)
	}
}

// BenchmarkPublishBatches stores 2,000 messages of 300 bytes as atomic
// batches of each size (at most two in flight), fsync always: what a batch
// costs beyond its messages.
func BenchmarkPublishBatches(b *testing.B) {
	raw := newTestRaw(b, 300)
	const n = 2000
	for _, size := range []int{1, 5, 20, 100, 1000} {
		b.Run("batch="+strconv.Itoa(size), func(b *testing.B) {
			for b.Loop() {
				rate, err := raw.PublishBatches(b.Context(), n, 300, size)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(rate.Elapsed.Microseconds())/1e3/float64((n+size-1)/size), "ms/batch")
				b.ReportMetric(rate.PerSecond(), "msgs/s")
			}
		})
	}
}

// newTestRaw is a Raw of payload size on a server of its own (fsync
// always), closed when the test ends.
func newTestRaw(tb testing.TB, size int) *Raw {
	tb.Helper()
	_, nc := natstest.Open(tb)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := NewRaw(tb.Context(), js, size)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(raw.Close)
	return raw
}
