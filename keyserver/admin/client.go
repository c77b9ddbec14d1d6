package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/commsec/communicator/internal/msgpacksafe"

	"github.com/commsec/communicator/protocol/keys"
)

// Error is the keyserver's refusal of a request.
type Error struct {
	Code    string // "400" invalid command, "403" unauthorized, "409" conflict, "500" internal
	Message string
	Status  string // StatusRecorded: the first attempt's refusal, answered to a retry
}

func (e *Error) Error() string {
	if e.Status == StatusRecorded {
		return "keyserver: " + e.Message + " (the answer to the first attempt of this request)"
	}
	return "keyserver: " + e.Message
}

// Client sends signed admin requests, as ksctl does.
type Client struct {
	NC       *nats.Conn
	Operator *keys.SigningKey
}

// Do sends op with args and waits for the reply.
func (c *Client) Do(ctx context.Context, op string, args Args) (*Reply, error) {
	wire, err := Sign(op, args, c.Operator, time.Now())
	if err != nil {
		return nil, err
	}
	msg, err := c.NC.RequestWithContext(ctx, Subject(op), wire)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("admin: no keyserver answers on %s (is it running, and connected to this NATS?)", Subject(op))
	}
	if err != nil {
		return nil, fmt.Errorf("admin: %s: %w", op, err)
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		return nil, &Error{Code: code, Message: msg.Header.Get(micro.ErrorHeader), Status: msg.Header.Get(HeaderStatus)}
	}
	var r Reply
	if err := msgpacksafe.Unmarshal(msg.Data, &r); err != nil {
		return nil, fmt.Errorf("admin: malformed reply: %w", err)
	}
	return &r, nil
}
