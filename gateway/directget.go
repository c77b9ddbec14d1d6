package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// Headers and statuses of a batched direct get's replies (nats-server's
// ADR-31): each stored message, then an empty "204 EOB"; or "404" when
// nothing matches.
const (
	hdrStatus      = "Status"
	hdrDescription = "Description"
	hdrSequence    = "Nats-Sequence"
	hdrNumPending  = "Nats-Num-Pending"
	statusEOB      = "204"
	statusNoMsgs   = "404"
)

// directBatch reads up to batch stored messages of subject in stream,
// from sequence from on, with one batched direct get: no consumer is made
// on the server. It calls fn with each message in order until fn returns
// false, and returns how many it read.
//
// The reply subscription buffers exactly one batch. The library's
// batched get (orbit.go's jetstreamext.GetBatch) subscribes synchronously,
// which allocates and clears a 65,536-slot channel (512 KiB) on every
// call: done on every connect, it cost the gateway more CPU than the
// handshake's cryptography.
func (g *Gateway) directBatch(ctx context.Context, stream, subject string, from uint64, batch int,
	fn func(seq uint64, data []byte) bool) (int, error) {
	req, err := json.Marshal(struct {
		Seq     uint64 `json:"seq"`
		NextFor string `json:"next_by_subj"`
		Batch   int    `json:"batch"`
	}{max(from, 1), subject, batch})
	if err != nil {
		return 0, err
	}
	replies := make(chan *nats.Msg, batch+1) // the batch and its end marker
	inbox := g.nc.NewRespInbox()
	sub, err := g.nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return 0, fmt.Errorf("gateway: direct get: %w", err)
	}
	defer sub.Unsubscribe()
	if err := g.nc.PublishRequest(g.apiSubject("DIRECT.GET."+stream), inbox, req); err != nil {
		return 0, fmt.Errorf("gateway: direct get: %w", err)
	}
	return readBatch(ctx, replies, fn)
}

// readBatch hands the replies of a batched direct get to fn until the end
// marker.
func readBatch(ctx context.Context, replies <-chan *nats.Msg, fn func(uint64, []byte) bool) (int, error) {
	for n := 0; ; {
		var m *nats.Msg
		select {
		case m = <-replies:
		case <-ctx.Done():
			return n, fmt.Errorf("gateway: direct get: %w", ctx.Err())
		}
		switch status := m.Header.Get(hdrStatus); {
		case status == statusEOB && len(m.Data) == 0, status == statusNoMsgs:
			return n, nil
		case status != "":
			return n, fmt.Errorf("gateway: direct get: status %s %s", status, m.Header.Get(hdrDescription))
		case m.Header.Get(hdrNumPending) == "":
			return n, fmt.Errorf("gateway: direct get: the server does not support batches")
		}
		seq, err := strconv.ParseUint(m.Header.Get(hdrSequence), 10, 64)
		if err != nil {
			return n, fmt.Errorf("gateway: direct get: bad sequence header: %w", err)
		}
		n++
		if !fn(seq, m.Data) {
			return n, nil
		}
	}
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
