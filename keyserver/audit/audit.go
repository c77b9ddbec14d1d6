// Package audit replays the event log to answer "who could read group X,
// and when": it verifies every signature of the group's events and the
// hash chain of the whole log with the same projection every service uses,
// and builds the group's membership timeline. A log that was tampered with
// or truncated makes Run fail with a *BrokenError naming the first broken
// event.
package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/streams"
)

// Report is a group's audited history.
type Report struct {
	Group     string       `json:"group"`
	Name      string       `json:"name"`
	Created   time.Time    `json:"created"`
	CreatedBy string       `json:"created_by"`
	Deleted   *time.Time   `json:"deleted,omitempty"`
	Changes   []Change     `json:"changes"`
	Epochs    []Epoch      `json:"epochs"`
	Members   []Member     `json:"members"`
	Verified  Verification `json:"verified"`
	Until     time.Time    `json:"until"` // when the audit ran: open spans end here
	// Broken is set when verification failed: the rest of the report is
	// what the log says, events that failed left out, and is NOT verified.
	Broken *Breakage `json:"broken,omitempty"`
}

// Breakage is the first event that failed verification.
type Breakage struct {
	StreamSeq uint64 `json:"stream_seq"`
	Subject   string `json:"subject"`
	Reason    string `json:"reason"`
}

// Change is one event of the group.
type Change struct {
	Seq       uint64    `json:"seq"`        // position in the group's chain
	StreamSeq uint64    `json:"stream_seq"` // position in the log
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	By        string    `json:"by"` // "keyserver" or "operator <hex>"
	Clients   []string  `json:"clients,omitempty"`
	Epoch     uint32    `json:"epoch,omitempty"`
	Reason    string    `json:"reason,omitempty"`
}

// Epoch is one key period and who held its key.
type Epoch struct {
	Number  uint32     `json:"number"`
	Start   time.Time  `json:"start"`
	End     *time.Time `json:"end,omitempty"` // nil: the current epoch
	Members []string   `json:"members"`       // client names (or short ids)
	Cause   string     `json:"cause"`
	By      string     `json:"by"`
	Reason  string     `json:"reason,omitempty"`
}

// Member is one client's membership spans.
type Member struct {
	Client string `json:"client"` // hex id
	Name   string `json:"name"`
	Spans  []Span `json:"spans"`
}

// Span is an uninterrupted membership.
type Span struct {
	From      time.Time  `json:"from"`
	To        *time.Time `json:"to,omitempty"` // nil: still a member
	FromEpoch uint32     `json:"from_epoch"`
	ToEpoch   uint32     `json:"to_epoch,omitempty"` // last epoch held
}

// Verification says what was checked.
type Verification struct {
	LogEvents    uint64 `json:"log_events"`    // events replayed (whole log)
	GroupEvents  int    `json:"group_events"`  // the group's events, each signature verified
	HeadSeq      uint64 `json:"head_seq"`      // the group's last event
	HeadHash     string `json:"head_hash"`     // its hash, to compare with a later audit
	KeyserverKey string `json:"keyserver_key"` // the key the signatures verify under
}

// BrokenError names the first event that failed verification.
type BrokenError struct {
	StreamSeq uint64
	Subject   string
	Err       error
}

func (e *BrokenError) Error() string {
	return fmt.Sprintf("audit: log broken at event %d (%s): %v", e.StreamSeq, e.Subject, e.Err)
}

func (e *BrokenError) Unwrap() error { return e.Err }

// ErrNoGroup means no group has the given name or id.
var ErrNoGroup = errors.New("audit: no such group in the log")

// WrongKeyError means that not one group's creation in the log verifies
// under Key: it is not the key of the keyserver that wrote the log.
type WrongKeyError struct {
	Key    [32]byte
	Groups int // creations that do not verify
}

func (e *WrongKeyError) Error() string {
	return fmt.Sprintf("audit: the log does not verify under keyserver key %x…: none of its %d group creations is signed by it; is it the public key of the keyserver that wrote this log?",
		e.Key[:4], e.Groups)
}

// Progress reports replayed events out of the total.
type Progress func(done, total uint64)

// Run audits the group named ref (name or hex id) from the log in js. A
// log that fails verification gives the *BrokenError and, unless the
// group's creation itself is what broke, a report with Broken set.
func Run(ctx context.Context, js jetstream.JetStream, ks [32]byte, ref string, progress Progress) (*Report, error) {
	store, err := events.OpenReadOnly(ctx, js)
	if err != nil {
		return nil, err
	}
	if progress == nil {
		progress = func(uint64, uint64) {}
	}
	gap, err := missingEvents(ctx, js)
	if err != nil {
		return nil, err
	}
	g, err := resolve(ctx, store, ks, ref)
	if err != nil {
		return nil, err
	}
	r, broken, err := replay(ctx, store, ks, g, progress)
	if err != nil {
		return nil, err
	}
	if gap != nil && (broken == nil || gap.StreamSeq <= broken.StreamSeq) {
		broken = gap
	}
	switch {
	case broken != nil && r == nil:
		return nil, broken
	case broken != nil:
		r.Broken = &Breakage{StreamSeq: broken.StreamSeq, Subject: broken.Subject, Reason: broken.Err.Error()}
		return r, broken
	}
	return r, nil
}

// missingEvents finds messages removed from the event stream, which the
// stream's configuration forbids: only tampering with its files can.
func missingEvents(ctx context.Context, js jetstream.JetStream) (*BrokenError, error) {
	s, err := js.Stream(ctx, streams.Events)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	info, err := s.Info(ctx, jetstream.WithDeletedDetails(true))
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if info.State.NumDeleted > 0 && len(info.State.Deleted) > 0 {
		return &BrokenError{StreamSeq: info.State.Deleted[0], Subject: streams.Events,
			Err: fmt.Errorf("%d events missing from the log (deletes are denied: the files were altered)", info.State.NumDeleted)}, nil
	}
	return nil, nil
}

// resolve finds the group's id: ref is a hex id, or the name of a group
// created in the log (the latest one with that name). It checks ks on
// the way: if groups were created and not one creation verifies under
// ks, ks is not the key of the keyserver that wrote the log (or every
// one was forged, which the audit cannot tell apart).
func resolve(ctx context.Context, store *events.Store, ks [32]byte, ref string) (protocol.GroupID, error) {
	var found *protocol.GroupID
	var verified, failed int
	err := store.Replay(ctx, streams.EventPrefix+"group.*", 1, func(m events.Stored) error {
		e, err := m.Record.Decode()
		if err != nil || e.Type != record.GroupCreated {
			return nil
		}
		if m.Record.Verify(&ks) != nil {
			failed++
			return nil
		}
		verified++
		if e.Group.Name == ref {
			id := e.Group.ID
			found = &id
		}
		return nil
	})
	if err != nil {
		return protocol.GroupID{}, err
	}
	if verified == 0 && failed > 0 {
		return protocol.GroupID{}, &WrongKeyError{Key: ks, Groups: failed}
	}
	if id, err := protocol.ParseGroupID(ref); err == nil {
		return id, nil
	}
	if found == nil {
		return protocol.GroupID{}, fmt.Errorf("%w: %q", ErrNoGroup, ref)
	}
	return *found, nil
}
