package fold_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/protocol"
)

// scan is GroupsOf the slow way: every group, in ascending order.
func scan(s *fold.State, id protocol.ClientID) []protocol.GroupID {
	var out []protocol.GroupID
	for gid, g := range s.Groups {
		if !g.Deleted && g.IsMember(id) {
			out = append(out, gid)
		}
	}
	slices.SortFunc(out, func(a, b protocol.GroupID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// history folds random valid changes into a State without NATS or
// signatures: registrations, groups created and deleted, members added
// and removed, rekeys, revocations.
type history struct {
	t       *testing.T
	rng     *rand.Rand
	s       *fold.State
	clients []protocol.ClientID
	groups  []protocol.GroupID
}

func (h *history) apply(e *record.Event) {
	h.t.Helper()
	if err := h.s.Apply(e); err != nil {
		h.t.Fatalf("%s: %v", e.Type, err)
	}
}

func (h *history) pick(ids []protocol.ClientID, n int, ok func(protocol.ClientID) bool) []protocol.ClientID {
	var out []protocol.ClientID
	for _, i := range h.rng.Perm(len(ids)) {
		if len(out) < n && ok(ids[i]) {
			out = append(out, ids[i])
		}
	}
	return out
}

func (h *history) epoch(t record.Type, gid protocol.GroupID, ids []protocol.ClientID) {
	g := h.s.Groups[gid]
	d, err := h.s.NextDigest(t, g, ids)
	if err != nil {
		h.t.Fatal(err)
	}
	h.apply(record.NewEpoch(t, gid, g.Epoch+1, ids, d, ""))
}

// step makes one random valid change.
func (h *history) step() {
	live := func(id protocol.ClientID) bool { return !h.s.Clients[id].Revoked }
	switch r := h.rng.IntN(10); {
	case r == 0 || len(h.clients) < 4:
		id := protocol.ClientID{byte(len(h.clients)), byte(len(h.clients) >> 8), 0xc1}
		h.apply(record.NewClientRegistered(id, [32]byte{1}, ""))
		h.clients = append(h.clients, id)
	case r == 1 || len(h.groups) == 0:
		gid := protocol.GroupID{byte(len(h.groups)), 0x9e}
		h.apply(record.NewGroupCreated(gid, "g"+string(rune('a'+len(h.groups)%26))+string(rune('a'+len(h.groups)/26)), record.Policy{}))
		h.groups = append(h.groups, gid)
	default:
		gid := h.groups[h.rng.IntN(len(h.groups))]
		g := h.s.Groups[gid]
		if g.Deleted {
			return
		}
		switch {
		case r == 2:
			h.apply(record.NewGroupDeleted(gid))
		case r == 3:
			if id := h.pick(h.clients, 1, live); len(id) > 0 {
				h.apply(record.NewClientRevoked(id[0], ""))
			}
		case r < 7:
			if ids := h.pick(h.clients, 1+h.rng.IntN(3), func(id protocol.ClientID) bool { return live(id) && !g.IsMember(id) }); len(ids) > 0 {
				h.epoch(record.MembersAdded, gid, ids)
			}
		case r < 9:
			if ids := h.pick(g.MemberList(), 1+h.rng.IntN(2), func(protocol.ClientID) bool { return true }); len(ids) > 0 {
				h.epoch(record.MembersRemoved, gid, ids)
			}
		default:
			if len(g.Members) > 0 {
				h.epoch(record.GroupRekeyed, gid, nil)
			}
		}
	}
}

// TestGroupsOfMatchesScan: on random histories, the index GroupsOf reads
// agrees with a scan of every group after every change, for every client.
func TestGroupsOfMatchesScan(t *testing.T) {
	for seed := range uint64(20) {
		h := &history{t: t, rng: rand.New(rand.NewPCG(seed, 13)), s: fold.NewState()}
		for range 300 {
			h.step()
			for _, id := range h.clients {
				got, want := h.s.GroupsOf(id), scan(h.s, id)
				if !slices.Equal(got, want) || h.s.InAnyGroup(id) != (len(want) > 0) {
					t.Fatalf("seed %d: GroupsOf(%s) = %v, a scan finds %v", seed, id.Short(), got, want)
				}
			}
		}
	}
}

// TestApplyRefusesAndChangesNothing: an invalid change is refused with
// its reason and leaves the state (and its digest) as it was.
func TestApplyRefusesAndChangesNothing(t *testing.T) {
	h := &history{t: t, rng: rand.New(rand.NewPCG(1, 1)), s: fold.NewState()}
	for range 50 {
		h.step()
	}
	before := h.s.Digest()
	gid := h.groups[0]
	for _, c := range []struct {
		e    *record.Event
		want error
	}{
		{record.NewClientRegistered(h.clients[0], [32]byte{}, ""), fold.ErrClientExists},
		{record.NewGroupCreated(gid, "other", record.Policy{}), fold.ErrGroupExists},
		{record.NewEpoch(record.MembersAdded, protocol.GroupID{0xff}, 1, h.clients[:1], [32]byte{}, ""), fold.ErrUnknownGroup},
		{record.NewEpoch(record.MembersAdded, gid, 0x7fff, h.clients[:1], [32]byte{}, ""), fold.ErrWrongEpoch},
		{record.NewClientRevoked(protocol.ClientID{0xee}, ""), fold.ErrUnknownClient},
	} {
		if err := h.s.Apply(c.e); !errors.Is(err, c.want) && !errors.Is(err, fold.ErrGroupDeleted) {
			t.Errorf("%s: %v, want %v", c.e.Type, err, c.want)
		}
	}
	if h.s.Digest() != before {
		t.Fatal("a refused change changed the state")
	}
}
