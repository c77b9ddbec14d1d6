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

// The bounds of Client.Do's attempts.
const (
	// DefaultTimeout is how long an attempt waits for the keyserver's
	// answer when Client.Timeout is zero.
	DefaultTimeout = 30 * time.Second
	// DefaultAttempts is how often Client.Do sends a request when
	// Client.Attempts is zero: the first time and two retries.
	DefaultAttempts = 3
	// MaxAttempts bounds Client.Attempts. All attempts of a request must
	// end within the keyserver's clock window for requests (5 minutes by
	// default) for a retry the keyserver never received to be accepted.
	MaxAttempts = 10
	// retryPause is how long Do waits before sending a request again
	// when no keyserver was listening (one restarting after a crash).
	retryPause = time.Second
)

// ErrNoAnswer is the error of a request none of whose attempts was
// answered in time: it may or may not have run.
var ErrNoAnswer = errors.New("admin: no answer from the keyserver")

// Client sends signed admin requests, as ksctl does.
type Client struct {
	NC       *nats.Conn
	Operator *keys.SigningKey
	// Timeout is how long each attempt waits for the answer
	// (DefaultTimeout if zero); the context given to Do bounds them all.
	Timeout time.Duration
	// Attempts is how often Do sends a request that is not answered in
	// time (DefaultAttempts if zero, at most MaxAttempts).
	Attempts int
	// Retrying, if set, is told before each retry: the attempt about to
	// be sent (from 2), the number of attempts, and why.
	Retrying func(attempt, attempts int, cause error)
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// attempts is Attempts with its default and bound.
func (c *Client) attempts() int {
	if c.Attempts <= 0 {
		return DefaultAttempts
	}
	return min(c.Attempts, MaxAttempts)
}

// Do signs op with args and sends it until the keyserver answers, up to
// c's attempts of c's timeout each. Every attempt sends the same signed
// bytes, so the keyserver runs the request at most once and answers a
// retry with its first outcome (Reply.Status, Error.Status say so). The
// error wraps ErrNoAnswer and context.DeadlineExceeded when no attempt
// was answered.
func (c *Client) Do(ctx context.Context, op string, args Args) (*Reply, error) {
	wire, err := Sign(op, args, c.Operator, time.Now())
	if err != nil {
		return nil, err
	}
	n := c.attempts()
	for attempt := 1; ; attempt++ {
		msg, err := c.send(ctx, op, wire)
		retry := errors.Is(err, context.DeadlineExceeded) || attempt > 1 && errors.Is(err, nats.ErrNoResponders)
		if !retry || ctx.Err() != nil {
			if err != nil {
				return nil, c.failed(op, err)
			}
			return parseReply(msg)
		}
		if attempt == n {
			return nil, fmt.Errorf("%w to %d attempts of %v each on %s: %w", ErrNoAnswer, n, c.timeout(), Subject(op), context.DeadlineExceeded)
		}
		if errors.Is(err, nats.ErrNoResponders) {
			if err := pause(ctx, retryPause); err != nil {
				return nil, c.failed(op, err)
			}
		}
		if c.Retrying != nil {
			c.Retrying(attempt+1, n, err)
		}
	}
}

// send makes one attempt.
func (c *Client) send(ctx context.Context, op string, wire []byte) (*nats.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	return c.NC.RequestWithContext(ctx, Subject(op), wire)
}

func (c *Client) failed(op string, err error) error {
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("admin: no keyserver answers on %s (is it running, and connected to this NATS?)", Subject(op))
	}
	return fmt.Errorf("admin: %s: %w", op, err)
}

func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func parseReply(msg *nats.Msg) (*Reply, error) {
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		return nil, &Error{Code: code, Message: msg.Header.Get(micro.ErrorHeader), Status: msg.Header.Get(HeaderStatus)}
	}
	var r Reply
	if err := msgpacksafe.Unmarshal(msg.Data, &r); err != nil {
		return nil, fmt.Errorf("admin: malformed reply: %w", err)
	}
	return &r, nil
}
