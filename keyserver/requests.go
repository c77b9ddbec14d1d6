package keyserver

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/commsec/communicator/internal/msgpacksafe"
	"github.com/commsec/communicator/keyserver/admin"
	"github.com/commsec/communicator/streams"
)

// requests is the record of the signed admin requests the keyserver took
// (streams.AdminRequests), one subject per request nonce, which is the
// request's id. Two messages at most are written on a subject, each by
// compare-and-swap:
//
//  1. taken, before the request runs: the first message on the subject,
//     so that one keyserver instance, once, runs the request;
//  2. done, when the request ends: its outcome (the reply, or the
//     refusal's code and message), written on top of the first.
//
// Both hold the SHA-256 of the signed request, so that a retry (the very
// same bytes) is told apart from another request reusing the nonce. The
// record is kept streams.AdminRequestsWindow, after any restart and for
// every keyserver instance.
type requests struct {
	js     jetstream.JetStream
	stream jetstream.Stream
}

// The states of a request's record.
const (
	stateTaken = "taken" // running, or interrupted (the keyserver stopped)
	stateDone  = "done"  // ended with the outcome in the record
)

// requestRecord is one message of a request's record.
type requestRecord struct {
	State  string `msgpack:"state"`
	Op     string `msgpack:"op"`
	Digest []byte `msgpack:"digest"` // SHA-256 of the signed request
	// The outcome (done): a refusal's code and message, or the reply
	// (msgpack of admin.Reply). A read-only request's reply is not kept:
	// a retry runs it again.
	Code    string `msgpack:"code,omitempty"`
	Message string `msgpack:"msg,omitempty"`
	Reply   []byte `msgpack:"reply,omitempty"`

	seq uint64    // its stream sequence
	at  time.Time // when JetStream stored it
}

// errReplayed refuses a request whose nonce has a record of another
// request.
var errReplayed = fmt.Errorf("%w: request replayed (its nonce was taken before by another request)", admin.ErrUnauthorized)

// errTaken: the nonce has a record; the caller looks it up.
var errTaken = errors.New("keyserver: the request's nonce has a record")

func subjectOf(nonce []byte) string { return streams.AdminRequestSubject(hex.EncodeToString(nonce)) }

// take records r (digest: of its signed bytes) as taken and returns the
// record's sequence, or errTaken if its nonce has a record.
func (q *requests) take(ctx context.Context, r *admin.Request, digest [32]byte) (uint64, error) {
	return q.write(ctx, r.Nonce, 0, &requestRecord{State: stateTaken, Op: r.Op, Digest: digest[:]})
}

// finish records the outcome of the request taken at sequence taken.
func (q *requests) finish(ctx context.Context, r *admin.Request, taken uint64, out *requestRecord) error {
	_, err := q.write(ctx, r.Nonce, taken, out)
	return err
}

// write appends rec on nonce's subject if the subject's last message is
// at sequence after (0: none).
func (q *requests) write(ctx context.Context, nonce []byte, after uint64, rec *requestRecord) (uint64, error) {
	m := nats.NewMsg(subjectOf(nonce))
	var err error
	if m.Data, err = msgpack.Marshal(rec); err != nil {
		return 0, fmt.Errorf("keyserver: encoding the request's record: %w", err)
	}
	ack, err := q.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(after))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return 0, errTaken
	}
	if err != nil {
		return 0, fmt.Errorf("keyserver: recording the request: %w", err)
	}
	return ack.Sequence, nil
}

// lookup returns the last message of nonce's record (nil if there is
// none). A message this version cannot read (a record of an older one,
// which held the operation's name only) has no digest: no request is its
// retry.
func (q *requests) lookup(ctx context.Context, nonce []byte) (*requestRecord, error) {
	m, err := q.stream.GetLastMsgForSubject(ctx, subjectOf(nonce))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keyserver: reading the request's record: %w", err)
	}
	var rec requestRecord
	if msgpacksafe.Unmarshal(m.Data, &rec) != nil {
		rec = requestRecord{}
	}
	rec.seq, rec.at = m.Sequence, m.Time
	return &rec, nil
}

// outcome is the record of a request that ended with reply or err.
func outcome(r *admin.Request, digest [32]byte, reply *admin.Reply, err error) *requestRecord {
	rec := &requestRecord{State: stateDone, Op: r.Op, Digest: digest[:]}
	switch {
	case err != nil:
		rec.Code, rec.Message = errorCode(err), err.Error()
	case r.Op != admin.OpList:
		rec.Reply, _ = msgpack.Marshal(reply)
	}
	return rec
}
