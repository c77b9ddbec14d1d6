package keyserver

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/msgpacksafe"
	"github.com/commsec/communicator/keyserver/admin"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/streams"
)

// again answers a request whose nonce has a record, or whose time is
// outside the clock window (stale is that refusal): the retry of a
// request the keyserver took gets the request's first outcome, or, if it
// has none (the keyserver stopped while it ran), what the event log shows
// of it; any other request is refused.
func (h *adminHandler) again(ctx context.Context, req micro.Request, r *admin.Request, digest [32]byte, stale error) {
	rec, err := h.k.requests.lookup(ctx, r.Nonce)
	switch {
	case err != nil:
		h.k.log.Error().Err(err).Str("op", r.Op).Msg("admin request's record not read; not answered")
		req.Error("500", "the keyserver could not read the request's record; send it again", nil)
	case rec == nil && stale != nil:
		h.refuse(req, stale)
	case rec == nil || !bytes.Equal(rec.Digest, digest[:]):
		h.refuse(req, errReplayed)
	case rec.State == stateDone:
		h.k.Metrics.adminRetries.Add(1)
		h.recorded(ctx, req, r, rec)
	default:
		h.k.Metrics.adminRetries.Add(1)
		h.interrupted(ctx, req, r, rec)
	}
}

// recorded answers a retry with the request's recorded outcome, marked
// admin.StatusRecorded. A read-only request runs again.
func (h *adminHandler) recorded(ctx context.Context, req micro.Request, r *admin.Request, rec *requestRecord) {
	h.k.log.Info().Str("op", r.Op).Str("code", rec.Code).Msg("admin request retried; answered with its first outcome")
	if rec.Code != "" {
		req.Error(rec.Code, rec.Message, nil, micro.WithHeaders(micro.Headers{admin.HeaderStatus: {admin.StatusRecorded}}))
		return
	}
	reply := new(admin.Reply)
	var err error
	if rec.Reply == nil {
		reply, err = h.k.dispatch(ctx, r)
	} else {
		err = msgpacksafe.Unmarshal(rec.Reply, reply)
		reply.Status = admin.StatusRecorded
	}
	if err != nil {
		h.k.log.Error().Err(err).Str("op", r.Op).Msg("retried admin request not answered")
		req.Error("500", "the keyserver could not answer the retried request: "+err.Error(), nil)
		return
	}
	data, _ := msgpack.Marshal(reply)
	req.Respond(data)
}

// interrupted answers a retry of a request taken but never finished: the
// keyserver that took it stopped (or another instance still runs it). The
// events appended on the request's behalf carry its nonce; the answer says
// whether there are any, and what the last one did.
func (h *adminHandler) interrupted(ctx context.Context, req micro.Request, r *admin.Request, rec *requestRecord) {
	evs, err := h.k.requestEvents(ctx, r.Nonce, rec.at)
	if err != nil {
		h.k.log.Error().Err(err).Str("op", r.Op).Msg("interrupted admin request: the event log could not be read")
		req.Error("500", "the keyserver could not read the event log; send the request again", nil)
		return
	}
	if len(evs) == 0 {
		h.k.log.Warn().Str("op", r.Op).Msg("admin request retried: interrupted before its change was committed")
		req.Error("500", "interrupted: the keyserver that took this request stopped before committing its change "+
			"(or another keyserver instance is still running it); the event log shows no change by it", nil)
		return
	}
	reply := h.k.committed(evs[len(evs)-1])
	h.k.log.Warn().Str("op", r.Op).Str("outcome", reply.Message).Msg("admin request retried: interrupted after its change was committed")
	data, _ := msgpack.Marshal(reply)
	req.Respond(data)
}

// clockSlack is how far before its record's time a request's events are
// looked for: the record and the events are stamped by JetStream, whose
// servers in a cluster may disagree a little.
const clockSlack = time.Minute

// requestEvents returns the events, verified, that carry nonce as their
// request, looking from since on.
func (k *Keyserver) requestEvents(ctx context.Context, nonce []byte, since time.Time) ([]*record.Event, error) {
	from, ok, err := streams.FirstSince(ctx, k.js, streams.Events, streams.AllEvents, since.Add(-clockSlack))
	if err != nil || !ok {
		return nil, err
	}
	pub := k.cfg.Key.Public()
	var out []*record.Event
	err = k.store.Replay(ctx, streams.AllEvents, from, func(m events.Stored) error {
		e, err := m.Record.Decode()
		if err != nil || !bytes.Equal(e.Request[:], nonce) || m.Record.Verify(&pub) != nil {
			return nil // not the request's, or refused by the projection too
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// committed describes the committed change of an interrupted request by
// its last event, as the request's reply would have.
func (k *Keyserver) committed(e *record.Event) *admin.Reply {
	r := &admin.Reply{Status: admin.StatusInterrupted}
	var what string
	k.proj.Read(func(s *fold.State) {
		switch {
		case e.Members != nil:
			m := e.Members
			r.Group, r.Epoch = m.Group.String(), uint32(m.Epoch)
			what = fmt.Sprintf("epoch %d of group %s", m.Epoch, groupName(s, m.Group))
			if g := s.Groups[m.Group]; g != nil && g.Epoch > m.Epoch {
				what += fmt.Sprintf(" (the group is at epoch %d now)", g.Epoch)
			}
		case e.Group != nil:
			r.Group = e.Group.ID.String()
			what = fmt.Sprintf("%s, group %s", e.Type, groupName(s, e.Group.ID))
		case e.Client != nil:
			what = fmt.Sprintf("%s, client %s", e.Type, clientName(s, e.Client.ID))
		}
	})
	r.Message = "interrupted: the change was committed, " + what
	return r
}

func groupName(s *fold.State, id protocol.GroupID) string {
	if g := s.Groups[id]; g != nil && g.Name != "" {
		return g.Name
	}
	return id.String()
}

func clientName(s *fold.State, id protocol.ClientID) string {
	if c := s.Clients[id]; c != nil && c.Name != "" {
		return c.Name
	}
	return id.String()
}
