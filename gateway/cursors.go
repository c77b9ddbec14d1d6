package gateway

import (
	"container/list"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/streams"
)

// cursorStore keeps each client's delivery cursor: per shard, the stream
// sequence up to which the client has acknowledged every delivery (a
// vector, cursorVec). What is acknowledged is written to the COMM_CURSORS
// bucket by one atomic batch per second for the whole gateway (at most
// streams.MaxAtomicBatch cursors a batch, each batch one synced write),
// and at Close: the cursors cost O(gateways) writes, not O(clients). A
// session's last cursor goes into the next batch. A cursor that lags only
// means redelivery, which the client's counters absorb; a cursor never
// passes what was delivered and acknowledged, since only acknowledged
// sequences are marked.
//
// A client's record (cursorrecord.go) also holds the bundles it
// confirmed: the highest bundle sequence, and per group the newest epoch.
//
// The records of recently disconnected clients stay in memory (recent, a
// bounded LRU): a client that reconnects to the same gateway needs no
// read. Over a graceful restart they are carried by the gateway's
// snapshot (snapshot.go). An LRU entry is not checked against a record
// another gateway wrote meanwhile (the client came back after visiting
// it): its cursor may lag that record, which costs a redelivery only.
type cursorStore struct {
	kv     jetstream.KeyValue
	g      *Gateway
	mu     sync.Mutex
	dirty  map[protocol.ClientID]saved
	recent recentCursors
	stopC  chan struct{}
	done   chan struct{}
}

// cursorVec is a client's cursor per shard; shards past its length are 0.
type cursorVec []uint64

// at is shard i's cursor.
func (v cursorVec) at(i int) uint64 {
	if i < len(v) {
		return v[i]
	}
	return 0
}

// merge raises v to w, shard by shard.
func (v cursorVec) merge(w cursorVec) cursorVec {
	for len(v) < len(w) {
		v = append(v, 0)
	}
	for i, c := range w {
		v[i] = max(v[i], c)
	}
	return v
}

// String is the stored form: the shards' cursors in decimal, separated
// by commas, trailing zeros left out. A cursor written before sharding
// is one number: shard 0's.
func (v cursorVec) String() string {
	n := len(v)
	for n > 1 && v[n-1] == 0 {
		n--
	}
	parts := make([]string, n)
	for i := range n {
		parts[i] = strconv.FormatUint(v[i], 10)
	}
	return strings.Join(parts, ",")
}

// parseCursor reads a stored cursor; ok is false for one that is not
// well-formed (it is treated as nothing acknowledged: redelivery).
func parseCursor(s string) (v cursorVec, ok bool) {
	parts := strings.Split(s, ",")
	if len(parts) > streams.MaxShards {
		return nil, false
	}
	v = make(cursorVec, len(parts))
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return nil, false
		}
		v[i] = n
	}
	return v, true
}

// saved is what the gateway keeps of a client that left, and what its
// record in the bucket holds (record).
type saved struct {
	cursor cursorVec
	bundle uint64      // the highest bundle sequence the client confirmed
	epochs groupEpochs // per group, the newest epoch whose bundle it confirmed
}

// lowered is v, copied, with shard's cursor below from.
func (v cursorVec) lowered(shard int, from uint64) cursorVec {
	v = append(cursorVec(nil), v...)
	if shard < len(v) && from > 0 && v[shard] >= from {
		v[shard] = from - 1
	}
	return v
}

// merge raises sv to w: cursors shard by shard, epochs group by group.
// It shares nothing with w.
func (sv saved) merge(w saved) saved {
	sv.cursor = append(cursorVec(nil), sv.cursor...).merge(w.cursor)
	sv.bundle = max(sv.bundle, w.bundle)
	sv.epochs = sv.epochs.clone().merge(w.epochs)
	return sv
}

func openCursors(ctx context.Context, g *Gateway) (*cursorStore, error) {
	kv, err := streams.BindKV(ctx, g.js, streams.Cursors)
	if err != nil {
		return nil, err
	}
	c := &cursorStore{kv: kv, g: g, dirty: map[protocol.ClientID]saved{}, recent: newRecent(maxRecent),
		stopC: make(chan struct{}), done: make(chan struct{})}
	g.Metrics.snapshotLoaded.Set(float64(c.loadSnapshot(ctx)))
	go c.loop()
	g.stop = append(g.stop, c.stop)
	return c, nil
}

// load returns the client's record, from memory if the client left this
// gateway recently (or before its graceful restart), else from the
// bucket (one JetStream API call: calls is 1).
func (c *cursorStore) load(id protocol.ClientID) (sv saved, calls int) {
	c.mu.Lock()
	sv, ok := c.recent.get(id)
	if ok {
		sv = sv.merge(c.dirty[id])
	}
	c.mu.Unlock()
	if ok {
		return sv, 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, err := c.kv.Get(ctx, id.String())
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		c.g.log.Warn().Err(err).Str("client", id.Short()).Msg("cursor unavailable; delivering from the start")
	default:
		if r, ok := parseRecord(string(e.Value())); ok {
			sv = r
		}
	}
	c.mu.Lock()
	sv = sv.merge(c.dirty[id])
	c.mu.Unlock()
	return sv, 1
}

// mark records an acknowledged cursor (and the bundles confirmed) for
// the next batch.
func (c *cursorStore) mark(id protocol.ClientID, sv saved) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.markLocked(id, sv)
}

func (c *cursorStore) markLocked(id protocol.ClientID, sv saved) {
	if len(sv.cursor) == 0 && sv.bundle == 0 && len(sv.epochs) == 0 {
		return
	}
	c.dirty[id] = c.dirty[id].merge(sv)
}

// lower brings the cursor of shard below from, for each of ids this
// gateway holds a cursor of (in the next batch, or recently left), and
// has it written so: a message at from or later was lost on the live
// feed, and their acknowledgements may have moved past it. Unlike mark,
// it does not keep the higher value. live is the saved state of the ids
// with a session now (already rewound), which replaces what is pending.
func (c *cursorStore) lower(ids []protocol.ClientID, shard int, from uint64, live map[protocol.ClientID]saved) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		sv, pending := c.dirty[id]
		if l, ok := live[id]; ok {
			sv, pending = l, true
		}
		if e, ok := c.recent.byID[id]; ok {
			r := e.Value.(recentEntry)
			r.sv.cursor = r.sv.cursor.lowered(shard, from)
			e.Value = r
			if !pending {
				sv, pending = r.sv, true
			}
		}
		if pending {
			sv.cursor = sv.cursor.lowered(shard, from)
			c.dirty[id] = sv
		}
	}
}

// ended keeps a leaving client's cursor in memory and marks it for the
// next batch.
func (c *cursorStore) ended(id protocol.ClientID, sv saved) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.markLocked(id, sv)
	c.recent.put(id, sv)
}

// cursorInterval is how often a gateway writes the cursors acknowledged
// meanwhile, as one batch.
const cursorInterval = time.Second

func (c *cursorStore) loop() {
	defer close(c.done)
	t := time.NewTicker(cursorInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stopC:
			return
		case <-t.C:
			c.flush()
		}
	}
}

type cursorEntry struct {
	id protocol.ClientID
	sv saved
}

// take empties the cursors acknowledged since the last take.
func (c *cursorStore) take() []cursorEntry {
	c.mu.Lock()
	batch := c.dirty
	c.dirty = map[protocol.ClientID]saved{}
	c.mu.Unlock()
	entries := make([]cursorEntry, 0, len(batch))
	for id, sv := range batch {
		entries = append(entries, cursorEntry{id, sv})
	}
	return entries
}

// flush writes every cursor acknowledged since the last take now.
func (c *cursorStore) flush() {
	entries := c.take()
	for len(entries) > 0 {
		n := min(len(entries), streams.MaxAtomicBatch)
		c.write(entries[:n])
		entries = entries[n:]
	}
}

// write saves cursors as one atomic batch (one by one if the bucket does
// not allow atomic publish: a deployment whose keyserver has not turned
// it on yet); those not saved are marked again for a later write.
func (c *cursorStore) write(entries []cursorEntry) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.writeAtomic(ctx, entries)
	if streams.IsAPIError(err, streams.ErrCodeAtomicDisabled) {
		err = c.writeEach(ctx, entries)
	}
	if err != nil {
		c.g.log.Warn().Err(err).Int("cursors", len(entries)).Msg("cursors not saved")
		c.mu.Lock()
		for _, e := range entries {
			c.markLocked(e.id, e.sv)
		}
		c.mu.Unlock()
		return
	}
	c.g.Metrics.cursorBatches.Inc()
	c.g.Metrics.cursorsWritten.Add(float64(len(entries)))
}

func (c *cursorStore) writeAtomic(ctx context.Context, entries []cursorEntry) error {
	msgs := make([]*nats.Msg, len(entries))
	for i, e := range entries {
		msgs[i] = &nats.Msg{Subject: streams.KVPrefix(streams.Cursors) + e.id.String(), Header: nats.Header{},
			Data: []byte(e.sv.record())}
	}
	f, err := streams.PublishAtomic(c.g.js, msgs)
	if err != nil {
		return err
	}
	return streams.WaitAck(ctx, f)
}

func (c *cursorStore) writeEach(ctx context.Context, entries []cursorEntry) error {
	for _, e := range entries {
		if _, err := c.kv.Put(ctx, e.id.String(), []byte(e.sv.record())); err != nil {
			return err
		}
	}
	return nil
}

// stop writes what is pending; the sessions have ended before.
func (c *cursorStore) stop() {
	close(c.stopC)
	<-c.done
	c.flush()
	c.writeSnapshot()
}

// maxRecent bounds the cursors kept of clients that left: a few hundred
// bytes each.
const maxRecent = 1 << 16

// recentCursors is a least-recently-used map of the clients that left.
type recentCursors struct {
	max   int
	order *list.List // of recentEntry, the most recent first
	byID  map[protocol.ClientID]*list.Element
}

type recentEntry struct {
	id protocol.ClientID
	sv saved
}

func newRecent(n int) recentCursors {
	return recentCursors{max: n, order: list.New(), byID: map[protocol.ClientID]*list.Element{}}
}

func (r *recentCursors) get(id protocol.ClientID) (saved, bool) {
	e, ok := r.byID[id]
	if !ok {
		return saved{}, false
	}
	r.order.MoveToFront(e)
	return e.Value.(recentEntry).sv, true
}

// each calls fn for every entry, the most recent first.
func (r *recentCursors) each(fn func(protocol.ClientID, saved)) {
	for e := r.order.Front(); e != nil; e = e.Next() {
		v := e.Value.(recentEntry)
		fn(v.id, v.sv)
	}
}

func (r *recentCursors) put(id protocol.ClientID, sv saved) {
	if e, ok := r.byID[id]; ok {
		sv = e.Value.(recentEntry).sv.merge(sv)
		e.Value = recentEntry{id, sv}
		r.order.MoveToFront(e)
		return
	}
	r.byID[id] = r.order.PushFront(recentEntry{id, sv})
	for r.order.Len() > r.max {
		last := r.order.Back()
		delete(r.byID, last.Value.(recentEntry).id)
		r.order.Remove(last)
	}
}
