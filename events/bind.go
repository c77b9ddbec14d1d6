package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/commsec/communicator/streams"
	"github.com/nats-io/nats.go/jetstream"
)

// Bind waits until the event stream exists (the keyserver creates it) and
// opens it without changing it: relays and gateways may not configure
// streams.
func Bind(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	for {
		st, err := js.Stream(ctx, streams.Events)
		if err == nil {
			return &Store{js: js, stream: st}, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("events: stream %s: %w", streams.Events, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("events: stream %s does not exist (is the keyserver running?): %w", streams.Events, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
