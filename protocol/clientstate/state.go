// Package clientstate is what a client remembers between runs besides its
// identity: per group the keys of its recent epochs, the next counter it
// may send with, how far the group has moved into its newest epoch, and
// per sender the replay window and the newest epoch it accepted.
//
// Epoch keys are retired by rule, not by clock (PROTOCOL.md §8.3): once a
// sender's message of epoch E is accepted, that sender's messages of
// older epochs are refused; once protocol.RetireAfter messages of a group
// were accepted from its first message of the newest epoch on, the keys
// of older epochs are dropped.
//
// Counters follow the design decisions: per (group, sender), strictly
// increasing, gaps allowed. The send counter uses block reservation: the
// state stores counter+Reserve every Reserve messages and a restarted
// client resumes at the stored value, so no counter is ever sent twice
// while flash is written rarely. Every accepted message is persisted
// before the caller hands it on, so a restarted client refuses a message
// it already saw.
package clientstate

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/protocol/replay"
)

// Defaults for Options.
const (
	DefaultReserve   = 64
	DefaultMaxEpochs = 4
	MaxMaxEpochs     = 16 // the stored form counts keys in one byte; far more than any device needs
)

// Options tune a State.
type Options struct {
	// Reserve is the block of send counters reserved per write (default 64).
	Reserve uint64
	// MaxEpochs bounds the epoch keys kept per group (default 4); installing
	// more drops the oldest.
	MaxEpochs int
}

func (o *Options) fill() {
	if o.Reserve == 0 {
		o.Reserve = DefaultReserve
	}
	if o.MaxEpochs <= 0 {
		o.MaxEpochs = DefaultMaxEpochs
	}
	o.MaxEpochs = min(o.MaxEpochs, MaxMaxEpochs)
}

// senderTag keys the replay state: the first 8 bytes of the sender's id. A
// collision between two members only makes the client refuse more (it
// keeps the larger counter); it never lets a replay through.
type senderTag [8]byte

func tagOf(id protocol.ClientID) senderTag { return senderTag(id[:8]) }

type epochKey struct {
	epoch protocol.Epoch
	key   [protocol.GroupKeySize]byte
}

type group struct {
	floor    protocol.Epoch // bundles for lower epochs are refused, messages of them too
	keys     []epochKey     // ascending by epoch
	reserved uint64         // counters below it may have been sent
	next     uint64         // the next counter to send (not persisted)
	newest   protocol.Epoch // the newest epoch of a message accepted (0: none)
	since    uint32         // messages accepted from the first of newest on, at most RetireAfter
	seen     map[senderTag]sender
}

// sender is what a group remembers of one sender.
type sender struct {
	window replay.Window
	epoch  protocol.Epoch // the newest epoch of a message accepted from it
}

func newGroup() *group { return &group{reserved: 1, next: 1, seen: map[senderTag]sender{}} }

// State is a client's persisted state. It is safe for concurrent use.
type State struct {
	mu     sync.Mutex
	opts   Options
	store  Store
	groups map[protocol.GroupID]*group
}

// Load reads the state from store (empty if nothing is stored yet).
func Load(store Store, opts Options) (*State, error) {
	opts.fill()
	data, err := store.Load()
	if err != nil {
		return nil, fmt.Errorf("clientstate: load: %w", err)
	}
	groups, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("clientstate: load: %w", err)
	}
	return &State{opts: opts, store: store, groups: groups}, nil
}

func (s *State) group(g protocol.GroupID) *group {
	gr := s.groups[g]
	if gr == nil {
		gr = newGroup()
		s.groups[g] = gr
	}
	return gr
}

func (s *State) save() error {
	data := encode(s.groups)
	defer clear(data)
	if err := s.store.Save(data); err != nil {
		return fmt.Errorf("clientstate: save: %w", err)
	}
	return nil
}

// InstallKey installs the key of (g, e) from a verified bundle. Installing
// the same key again is a no-op; a different key for an installed epoch is
// ErrEpochConflict; an epoch below the group's floor is ErrStaleEpoch.
func (s *State) InstallKey(g protocol.GroupID, e protocol.Epoch, key *[protocol.GroupKeySize]byte) error {
	if e == 0 || e == math.MaxUint32 {
		return protocol.ErrBadEpoch
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	gr := s.group(g)
	if e < gr.floor {
		return protocol.ErrStaleEpoch
	}
	i, found := slices.BinarySearchFunc(gr.keys, e, func(k epochKey, e protocol.Epoch) int { return cmpEpoch(k.epoch, e) })
	if found {
		if !bytes.Equal(gr.keys[i].key[:], key[:]) {
			return protocol.ErrEpochConflict
		}
		return nil
	}
	if i == 0 && len(gr.keys) >= s.opts.MaxEpochs {
		return protocol.ErrStaleEpoch // older than every key kept, and no room
	}
	before := s.snapshot(g)
	gr.keys = slices.Insert(gr.keys, i, epochKey{epoch: e, key: *key})
	for len(gr.keys) > s.opts.MaxEpochs {
		gr.dropOldest()
	}
	return s.saveOrRestore(g, before)
}

func cmpEpoch(a, b protocol.Epoch) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (gr *group) dropOldest() {
	gr.floor = gr.keys[0].epoch + 1 // no overflow: epochs are below 2^32-1 (see Accept)
	clear(gr.keys[0].key[:])
	gr.keys = gr.keys[1:]
}

// Key returns a copy of the key of (g, e).
func (s *State) Key(g protocol.GroupID, e protocol.Epoch) ([protocol.GroupKeySize]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gr := s.groups[g]
	if gr == nil || len(gr.keys) == 0 {
		return [protocol.GroupKeySize]byte{}, protocol.ErrUnknownGroup
	}
	for _, k := range gr.keys {
		if k.epoch == e {
			return k.key, nil
		}
	}
	if e < gr.floor {
		return [protocol.GroupKeySize]byte{}, protocol.ErrRetiredEpoch // dropped: it will not come back
	}
	return [protocol.GroupKeySize]byte{}, protocol.ErrUnknownEpoch
}

// Current returns the group's newest installed epoch and its key.
func (s *State) Current(g protocol.GroupID) (protocol.Epoch, [protocol.GroupKeySize]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gr := s.groups[g]
	if gr == nil || len(gr.keys) == 0 {
		return 0, [protocol.GroupKeySize]byte{}, protocol.ErrUnknownGroup
	}
	k := gr.keys[len(gr.keys)-1]
	return k.epoch, k.key, nil
}

// Groups lists the groups the client holds a key for.
func (s *State) Groups() []protocol.GroupID {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []protocol.GroupID
	for g, gr := range s.groups {
		if len(gr.keys) > 0 {
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b protocol.GroupID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// NextCounter returns the counter for the client's next message to g. When
// it reaches the reserved mark it first persists a new mark Reserve ahead;
// if that fails it returns the error and no counter.
func (s *State) NextCounter(g protocol.GroupID) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gr := s.group(g)
	if gr.next >= gr.reserved {
		if gr.next > math.MaxUint64-s.opts.Reserve {
			return 0, protocol.ErrCounterExhausted
		}
		before := s.snapshot(g)
		gr.reserved = gr.next + s.opts.Reserve
		if err := s.saveOrRestore(g, before); err != nil {
			return 0, err
		}
	}
	c := gr.next
	gr.next++
	return c, nil
}

// checkCounter applies PROTOCOL.md §8.2 step 4: the counter against its
// sender's replay window in its group.
func checkCounter(w *replay.Window, counter uint64) error {
	switch w.Check(counter) {
	case replay.Exhausted:
		return protocol.ErrCounterExhausted
	case replay.Duplicate, replay.Old:
		return protocol.ErrReplayedMessage
	case replay.Jump:
		return protocol.ErrCounterJump
	}
	return nil
}

// check applies PROTOCOL.md §8.3's retirement and §8.2 step 4 to h.
func (gr *group) check(h envelope.Header) error {
	if h.Epoch < gr.floor {
		return protocol.ErrRetiredEpoch
	}
	snd := gr.seen[tagOf(h.Sender)]
	if h.Epoch < snd.epoch {
		return protocol.ErrRetiredEpoch // the sender has moved on to a newer epoch
	}
	return checkCounter(&snd.window, h.Counter)
}

// Check reports whether a message with header h would be accepted,
// without changing anything: ErrRetiredEpoch if its epoch is retired for
// its group or its sender, ErrReplayedMessage if its counter was seen or
// is below its sender's window, ErrCounterJump if it is too far above.
// A client calls it after the signature verified and before it opens.
func (s *State) Check(h envelope.Header) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	gr := s.groups[h.Group]
	if gr == nil {
		return protocol.ErrUnknownGroup
	}
	return gr.check(h)
}

// Accept records a message whose envelope was verified and opened under
// its epoch's key: its counter joins its sender's window, its epoch
// becomes the sender's newest, and keys are retired (PROTOCOL.md §8.3):
// those below the previous epoch at once, and the previous one too once
// RetireAfter messages were accepted from the first of the newest epoch
// on. The state is persisted before Accept returns; only then may the
// caller hand the message on.
func (s *State) Accept(h envelope.Header) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	gr := s.groups[h.Group]
	if gr == nil {
		return protocol.ErrUnknownGroup
	}
	if err := gr.check(h); err != nil {
		return err
	}
	before := s.snapshot(h.Group)
	tag := tagOf(h.Sender)
	snd := gr.seen[tag]
	snd.window.Accept(h.Counter)
	snd.epoch = max(snd.epoch, h.Epoch)
	gr.seen[tag] = snd
	gr.count(h.Epoch)
	gr.retire()
	return s.saveOrRestore(h.Group, before)
}

// count moves the group's position in its newest epoch on by one
// accepted message of epoch e.
func (gr *group) count(e protocol.Epoch) {
	switch {
	case e > gr.newest:
		gr.newest, gr.since = e, 1
	case gr.since < protocol.RetireAfter:
		gr.since++
	}
}

// retire drops the keys the rule of PROTOCOL.md §8.3 retires and raises
// the floor to the oldest epoch still accepted.
func (gr *group) retire() {
	if gr.newest == 0 {
		return
	}
	keep := gr.newest - 1
	if gr.since >= protocol.RetireAfter {
		keep = gr.newest
	}
	for len(gr.keys) > 0 && gr.keys[0].epoch < keep {
		gr.dropOldest()
	}
	gr.floor = max(gr.floor, keep)
}

// snapshot copies a group's state so a failed save can be undone.
func (s *State) snapshot(g protocol.GroupID) *group {
	gr := s.groups[g]
	c := *gr
	c.keys = slices.Clone(gr.keys)
	c.seen = make(map[senderTag]sender, len(gr.seen))
	for k, v := range gr.seen {
		c.seen[k] = v
	}
	return &c
}

func (s *State) saveOrRestore(g protocol.GroupID, before *group) error {
	err := s.save()
	if err != nil {
		s.groups[g] = before
	}
	return err
}

// Size returns the size of the persisted form, in bytes.
func (s *State) Size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(encode(s.groups))
}
