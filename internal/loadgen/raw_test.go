package loadgen

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/internal/natstest"
)

// TestPublishBatchesStoresEveryMessage: n messages in batches of 4, the
// last one short, are all stored, each batch committed as a whole.
func TestPublishBatchesStoresEveryMessage(t *testing.T) {
	_, nc := natstest.Start(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := NewRaw(t.Context(), js, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
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
