package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// msgGetResponse is the reply of JetStream's message-get API.
type msgGetResponse struct {
	Error *struct {
		ErrCode     jetstream.ErrorCode `json:"err_code"`
		Description string              `json:"description"`
	} `json:"error"`
	Message *struct {
		Sequence uint64 `json:"seq"`
		Data     []byte `json:"data"`
	} `json:"message"`
}

// nextStored returns the first message of stream on subject (wildcards
// allowed) at or after sequence from; found is false if there is none.
// It asks the stream's leader through the message-get API: no consumer is
// created, and no replica that lags behind can answer (a direct get may
// be answered by any replica).
func (g *Gateway) nextStored(ctx context.Context, stream, subject string, from uint64) (seq uint64, data []byte, found bool, err error) {
	req, err := json.Marshal(struct {
		Seq     uint64 `json:"seq"`
		NextFor string `json:"next_by_subj"`
	}{max(from, 1), subject})
	if err != nil {
		return 0, nil, false, err
	}
	return g.msgGet(ctx, stream, req)
}

// Bounds of the gateway's reads through the JetStream API.
const (
	// maxAPIReads bounds the reads in flight: a storm of connects would
	// otherwise send thousands at once, past what the server's API queue
	// takes (it drops the rest unanswered), and each would wait its whole
	// timeout for nothing.
	maxAPIReads = 64
	// apiTry bounds one request; a read is tried again (it changes
	// nothing) while its caller's context allows.
	apiTry = 5 * time.Second
)

// apiSlot waits for room among the reads in flight; release gives it back.
func (g *Gateway) apiSlot(ctx context.Context) (release func(), err error) {
	if g.apiSlots == nil {
		return func() {}, nil // a Gateway made by hand, in a test
	}
	select {
	case g.apiSlots <- struct{}{}:
		return func() { <-g.apiSlots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// msgGet asks stream's leader for the message req names.
func (g *Gateway) msgGet(ctx context.Context, stream string, req []byte) (seq uint64, data []byte, found bool, err error) {
	release, err := g.apiSlot(ctx)
	if err != nil {
		return 0, nil, false, fmt.Errorf("gateway: reading %s: %w", stream, err)
	}
	defer release()
	var reply *nats.Msg
	for {
		tctx, cancel := context.WithTimeout(ctx, apiTry)
		reply, err = g.nc.RequestWithContext(tctx, g.apiSubject("STREAM.MSG.GET."+stream), req)
		cancel()
		// Only a try without an answer is made again (the server drops
		// requests past its API queue's limit unanswered); no responders
		// is an answer: JetStream is not there.
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			break
		}
		g.Metrics.apiRetries.Inc()
	}
	if err != nil {
		return 0, nil, false, fmt.Errorf("gateway: reading %s: %w", stream, err)
	}
	var resp msgGetResponse
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return 0, nil, false, fmt.Errorf("gateway: reading %s: %w", stream, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrCode == jetstream.JSErrCodeMessageNotFound:
		return 0, nil, false, nil
	case resp.Error != nil:
		return 0, nil, false, fmt.Errorf("gateway: reading %s: %s", stream, resp.Error.Description)
	case resp.Message == nil:
		return 0, nil, false, fmt.Errorf("gateway: reading %s: an empty reply", stream)
	}
	return resp.Message.Sequence, resp.Message.Data, true, nil
}

// apiSubject is the JetStream API subject of the gateway's context.
func (g *Gateway) apiSubject(s string) string {
	opts := g.js.Options()
	switch {
	case opts.APIPrefix != "":
		return strings.TrimSuffix(opts.APIPrefix, ".") + "." + s
	case opts.Domain != "":
		return "$JS." + opts.Domain + ".API." + s
	}
	return "$JS.API." + s
}
