package admin_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/keyserver/admin"
)

// keyserverStandIn answers requests on op's subject from the answer-th
// attempt on (0: never), recording what each attempt carried.
type keyserverStandIn struct {
	mu       sync.Mutex
	attempts [][]byte
}

func (k *keyserverStandIn) serve(t *testing.T, nc *nats.Conn, op string, answer int) {
	t.Helper()
	sub, err := nc.Subscribe(admin.Subject(op), func(m *nats.Msg) {
		k.mu.Lock()
		k.attempts = append(k.attempts, bytes.Clone(m.Data))
		n := len(k.attempts)
		k.mu.Unlock()
		if answer > 0 && n >= answer {
			data, _ := msgpack.Marshal(&admin.Reply{Message: "done"})
			m.Respond(data)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// sent returns what each attempt carried so far.
func (k *keyserverStandIn) sent() [][]byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.attempts)
}

// TestDoRetriesWithTheSameBytes: an attempt without an answer in time is
// followed by another carrying the very same signed bytes (so that the
// keyserver can answer it with the first outcome), up to the client's
// attempts; then Do gives up with ErrNoAnswer.
func TestDoRetriesWithTheSameBytes(t *testing.T) {
	_, nc := natstest.Open(t)
	var rekey, del keyserverStandIn
	rekey.serve(t, nc, admin.OpRekey, 3)
	del.serve(t, nc, admin.OpDelete, 0)
	var told []int
	c := &admin.Client{NC: nc, Operator: fuzzOperator, Timeout: 50 * time.Millisecond,
		Retrying: func(attempt, attempts int, _ error) { told = append(told, attempt, attempts) }}

	r, err := c.Do(t.Context(), admin.OpRekey, admin.Args{Group: "ops"})
	if err != nil || r.Message != "done" {
		t.Fatalf("answered on the third attempt: %+v, %v", r, err)
	}
	if sent := rekey.sent(); len(sent) != 3 || !bytes.Equal(sent[0], sent[1]) || !bytes.Equal(sent[1], sent[2]) {
		t.Fatalf("%d attempts, want 3 of the same bytes", len(sent))
	}
	if want := []int{2, 3, 3, 3}; !slices.Equal(told, want) {
		t.Fatalf("retries told %v, want %v", told, want)
	}

	c.Attempts = 2
	_, err = c.Do(t.Context(), admin.OpDelete, admin.Args{Group: "ops"})
	if n := len(del.sent()); !errors.Is(err, admin.ErrNoAnswer) || !errors.Is(err, context.DeadlineExceeded) || n != 2 {
		t.Fatalf("never answered: %v after %d attempts, want ErrNoAnswer after 2", err, n)
	}

	_, err = c.Do(t.Context(), admin.OpList, admin.Args{}) // nobody listens
	if err == nil || !strings.Contains(err.Error(), "no keyserver answers") {
		t.Fatalf("no keyserver: %v", err)
	}
}
