package keyserver

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/keyserver/admin"
	"github.com/commsec/communicator/streams"
)

// requests is the record of the signed admin requests the keyserver took
// (streams.AdminRequests): one subject per request nonce, written by
// compare-and-swap before the request runs. A nonce with a record is
// refused, whether the request it came with wrote an event or failed,
// after any restart and on any keyserver instance; the in-memory check of
// admin.Verifier only spares the write for a replay it remembers.
type requests struct {
	js jetstream.JetStream
}

// errReplayed refuses a request whose nonce has a record.
var errReplayed = fmt.Errorf("%w: request replayed (its nonce was taken before)", admin.ErrUnauthorized)

// take records r's nonce, or refuses r if the nonce has a record.
func (q *requests) take(ctx context.Context, r *admin.Request) error {
	m := nats.NewMsg(streams.AdminRequestSubject(hex.EncodeToString(r.Nonce)))
	m.Data = []byte(r.Op)
	_, err := q.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(0))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return errReplayed
	}
	if err != nil {
		return fmt.Errorf("keyserver: recording the request: %w", err)
	}
	return nil
}
