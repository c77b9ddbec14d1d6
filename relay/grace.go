package relay

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/streams"
)

// The previous epoch's grace (PROTOCOL.md §8.1 rule 4, §8.3) follows the
// clients' rule for retiring a key, so that a relay never stores a
// message clients have stopped accepting. Clients count the messages of
// a group they accept from its first message of the newest epoch on, and
// drop the previous epoch's key at protocol.RetireAfter. A relay counts
// the messages it stores the same way, in the order they land in the
// group's shard, the one stream holding all of a group's messages (which
// is the order clients receive them), and stores a message
// of the previous epoch only while its count is below RetireAfter. A
// client sees at most what the relay stored, so its count at that
// message is at most the relay's: the message still opens.
//
// The count is exact only if this relay stored every message of the
// group's current epoch: it counts an epoch only when the epoch began
// (its event was appended to the log) after this relay held the group's
// partition, and forgets the counts of a partition it claims anew. A
// relay that cannot vouch for a count (it restarted, or took the
// partition over after the epoch began) treats the grace as over: the
// sender gets "old epoch" and seals the message again under the newer
// key (§8.4). While it counts, stores of the previous epoch exclude the
// others of the group (lock), so that no store of the current epoch is
// in flight, uncounted, when one of the previous epoch is decided.
type graceBook struct {
	mu     sync.Mutex
	counts map[protocol.GroupID]*graceCount
	// since[p] is the log's last sequence when this relay claimed
	// partition p: an epoch that began after it began while this relay
	// held p (math.MaxUint64: not held, or not known).
	since [streams.Partitions]atomic.Uint64
	// seen is each group's newest epoch the book has seen: from the
	// initial load, then from each followed event. A group whose current
	// epoch in the projection is newer is being applied right now.
	seen map[protocol.GroupID]protocol.Epoch
}

// graceCount counts a group's stored messages from the first of epoch on.
type graceCount struct {
	epoch protocol.Epoch
	lock  sync.RWMutex  // exclusive for a store of the previous epoch, shared for one of epoch
	n     atomic.Uint32 // stores from the first of epoch on (0: none of epoch yet)
}

// newGraceBook starts a book from the loaded state: it counts nothing.
func newGraceBook(s *fold.State) *graceBook {
	b := &graceBook{counts: map[protocol.GroupID]*graceCount{}, seen: map[protocol.GroupID]protocol.Epoch{}}
	for i := range b.since {
		b.since[i].Store(math.MaxUint64)
	}
	for id, g := range s.Groups {
		b.seen[id] = g.Epoch
	}
	return b
}

// claimed records that partition p was just claimed, and forgets its
// counts: another relay may have stored meanwhile. Until the log's end
// is known (since), no epoch of p counts.
func (b *graceBook) claimed(p int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for g := range b.counts {
		if streams.Partition(g) == p {
			delete(b.counts, g)
		}
	}
	b.since[p].Store(math.MaxUint64)
}

// released records that this relay no longer holds partition p.
func (b *graceBook) released(p int) { b.since[p].Store(math.MaxUint64) }

// eventApplied opens the count of a group's new epoch if the epoch began
// while this relay held its partition; seq is the event's sequence in the
// log.
func (b *graceBook) eventApplied(e *record.Event, seq uint64) {
	if e.Members == nil {
		return
	}
	g := e.Members.Group
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seen[g] = max(b.seen[g], e.Members.Epoch)
	if seq > b.since[streams.Partition(g)].Load() {
		b.counts[g] = &graceCount{epoch: e.Members.Epoch}
	} else {
		delete(b.counts, g)
	}
}

// count returns the count of g's epoch e, or nil if this relay does not
// count it; pending reports that the book has not seen e begin yet.
func (b *graceBook) count(g protocol.GroupID, e protocol.Epoch) (c *graceCount, pending bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.counts[g]; c != nil && c.epoch == e {
		return c, false
	}
	return nil, b.seen[g] < e
}

// open reports whether a previous-epoch message may still be stored.
func (c *graceCount) open() bool { return c.n.Load() < protocol.RetireAfter }
