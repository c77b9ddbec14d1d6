package audit

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/streams"
)

// replay folds the whole log with the services' projection, checking every
// signature of the group's own events (the others are authenticated by
// their chains and head signatures), and builds the timeline.
func replay(ctx context.Context, store *events.Store, ks [32]byte, g protocol.GroupID, progress Progress) (*Report, *BrokenError, error) {
	total, err := store.LastSeq(ctx)
	if err != nil {
		return nil, nil, err
	}
	p := events.NewLoader(ks)
	b := &builder{ks: ks, group: g, spans: map[protocol.ClientID]*Member{}}
	subject := events.Subject(record.GroupAggregate(g))
	var broken *BrokenError
	var done uint64
	err = store.Replay(ctx, streams.AllEvents, 1, func(m events.Stored) error {
		if done++; done%1024 == 0 {
			progress(done, total)
		}
		if m.Subject == subject {
			if err := m.Record.Verify(&ks); err != nil {
				broken = firstBroken(broken, m.Seq, m.Subject, err)
				return nil
			}
		}
		e, err := p.Apply(m)
		if err != nil {
			broken = firstBroken(broken, m.Seq, m.Subject, err)
			return nil
		}
		if m.Subject == subject {
			p.Read(func(s *fold.State) { b.add(m, e, s) })
		}
		return nil
	})
	progress(done, total)
	if err != nil {
		return nil, nil, err
	}
	var ae *events.ApplyError
	if err := p.VerifyHeads(); errors.As(err, &ae) {
		broken = firstBroken(broken, ae.Seq, ae.Subject, ae.Err)
	}
	switch {
	case !b.found && broken != nil: // its creation is what broke
		return nil, broken, nil
	case !b.found:
		return nil, nil, fmt.Errorf("%w: %s", ErrNoGroup, g)
	}
	return b.report(time.Now().UTC(), done, p.Head(record.GroupAggregate(g))), broken, nil
}

func firstBroken(cur *BrokenError, seq uint64, subject string, err error) *BrokenError {
	if cur != nil && cur.StreamSeq <= seq {
		return cur
	}
	return &BrokenError{StreamSeq: seq, Subject: subject, Err: err}
}

// builder accumulates the timeline of one group, event by event.
type builder struct {
	ks     [32]byte
	group  protocol.GroupID
	found  bool
	r      Report
	spans  map[protocol.ClientID]*Member
	events int
}

func (b *builder) by(e *record.Event) string {
	if e.Actor == b.ks {
		return "keyserver"
	}
	return "operator " + hex.EncodeToString(e.Actor[:])
}

func (b *builder) add(m events.Stored, e *record.Event, s *fold.State) {
	b.events++
	at := e.When()
	c := Change{Seq: e.Seq, StreamSeq: m.Seq, Time: at, Type: e.Type.String(), By: b.by(e)}
	switch e.Type {
	case record.GroupCreated:
		b.found = true
		b.r.Group, b.r.Name, b.r.Created, b.r.CreatedBy = e.Group.ID.String(), e.Group.Name, at, c.By
	case record.GroupDeleted:
		b.closeEpoch(at)
		b.closeSpans(at, s.Groups[b.group].Epoch, nil)
		b.r.Deleted = &at
	default:
		b.epochChange(e, at, s, &c)
	}
	b.r.Changes = append(b.r.Changes, c)
}

func (b *builder) epochChange(e *record.Event, at time.Time, s *fold.State, c *Change) {
	m := e.Members
	c.Epoch, c.Reason = uint32(m.Epoch), m.Reason
	for _, id := range m.Clients {
		c.Clients = append(c.Clients, name(s, id))
	}
	b.closeEpoch(at)
	g := s.Groups[b.group]
	ep := Epoch{Number: uint32(m.Epoch), Start: at, Cause: e.Type.String(), By: c.By, Reason: m.Reason}
	for _, id := range g.MemberList() {
		ep.Members = append(ep.Members, name(s, id))
	}
	sort.Strings(ep.Members)
	b.r.Epochs = append(b.r.Epochs, ep)
	switch e.Type {
	case record.MembersAdded:
		for _, id := range m.Clients {
			b.openSpan(s, id, at, m.Epoch)
		}
	case record.MembersRemoved:
		b.closeSpans(at, m.Epoch-1, m.Clients)
	}
}

func (b *builder) closeEpoch(at time.Time) {
	if n := len(b.r.Epochs); n > 0 && b.r.Epochs[n-1].End == nil {
		b.r.Epochs[n-1].End = &at
	}
}

func (b *builder) openSpan(s *fold.State, id protocol.ClientID, at time.Time, e protocol.Epoch) {
	mem := b.spans[id]
	if mem == nil {
		mem = &Member{Client: id.String(), Name: name(s, id)}
		b.spans[id] = mem
	}
	mem.Spans = append(mem.Spans, Span{From: at, FromEpoch: uint32(e)})
}

// closeSpans ends the open spans of ids (of everyone if ids is nil).
func (b *builder) closeSpans(at time.Time, last protocol.Epoch, ids []protocol.ClientID) {
	for id, mem := range b.spans {
		if ids != nil && !contains(ids, id) {
			continue
		}
		if n := len(mem.Spans); n > 0 && mem.Spans[n-1].To == nil {
			mem.Spans[n-1].To, mem.Spans[n-1].ToEpoch = &at, uint32(last)
		}
	}
}

func contains(ids []protocol.ClientID, id protocol.ClientID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func name(s *fold.State, id protocol.ClientID) string {
	if c := s.Clients[id]; c != nil && c.Name != "" {
		return c.Name
	}
	return id.Short()
}

func (b *builder) report(now time.Time, replayed uint64, head events.Head) *Report {
	r := b.r
	r.Until = now
	for _, m := range b.spans {
		r.Members = append(r.Members, *m)
	}
	sort.Slice(r.Members, func(i, j int) bool { return r.Members[i].Name < r.Members[j].Name })
	r.Verified = Verification{LogEvents: replayed, GroupEvents: b.events, HeadSeq: head.Seq,
		HeadHash: hex.EncodeToString(head.Hash[:]), KeyserverKey: hex.EncodeToString(b.ks[:])}
	return &r
}
