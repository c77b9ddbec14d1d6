package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

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

// msgGet asks stream's leader for the message req names.
func (g *Gateway) msgGet(ctx context.Context, stream string, req []byte) (seq uint64, data []byte, found bool, err error) {
	reply, err := g.nc.RequestWithContext(ctx, g.apiSubject("STREAM.MSG.GET."+stream), req)
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
