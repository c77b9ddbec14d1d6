package gateway

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/streams"
)

// cursorStore keeps each client's delivery cursor: the stream sequence up
// to which it has acknowledged every delivery. Acknowledgements are
// written to the COMM_CURSORS bucket at most once a second per client, and
// when the client disconnects; a cursor that lags only means redelivery,
// which the client's counters absorb.
//
// A second's cursors are written spread over the next second, a tenth at
// a time: written at once, as many as there are busy clients, they held
// the disk (each write is synced) long enough to show in the p99 latency
// of every message stored meanwhile.
type cursorStore struct {
	kv    jetstream.KeyValue
	mu    sync.Mutex
	dirty map[protocol.ClientID]uint64
	stopC chan struct{}
	done  chan struct{}
	g     *Gateway
}

func openCursors(ctx context.Context, g *Gateway) (*cursorStore, error) {
	kv, err := streams.BindKV(ctx, g.js, streams.Cursors)
	if err != nil {
		return nil, err
	}
	c := &cursorStore{kv: kv, dirty: map[protocol.ClientID]uint64{}, stopC: make(chan struct{}), done: make(chan struct{}), g: g}
	go c.loop()
	g.stop = append(g.stop, c.stop)
	return c, nil
}

// load returns the client's cursor (0: nothing acknowledged yet).
func (c *cursorStore) load(id protocol.ClientID) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, err := c.kv.Get(ctx, id.String())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0
	}
	if err != nil {
		c.g.log.Warn().Err(err).Str("client", id.Short()).Msg("cursor unavailable; delivering from the start")
		return 0
	}
	n, _ := strconv.ParseUint(string(e.Value()), 10, 64)
	return n
}

// mark records an acknowledged cursor for the next flush.
func (c *cursorStore) mark(id protocol.ClientID, cursor uint64) {
	if cursor == 0 {
		return
	}
	c.mu.Lock()
	c.dirty[id] = max(c.dirty[id], cursor)
	c.mu.Unlock()
}

// Pacing of the cursor writes.
const (
	cursorInterval = time.Second // a client's cursor is written at most this often
	cursorSlices   = 10          // the ticks each interval's writes are spread over
)

func (c *cursorStore) loop() {
	defer close(c.done)
	t := time.NewTicker(cursorInterval / cursorSlices)
	defer t.Stop()
	var pending []cursorEntry
	perTick := 0
	for {
		select {
		case <-c.stopC:
			c.write(pending)
			return
		case <-t.C:
		}
		if len(pending) == 0 {
			pending = c.take()
			perTick = (len(pending) + cursorSlices - 1) / cursorSlices
		}
		n := min(perTick, len(pending))
		c.write(pending[:n])
		pending = pending[n:]
	}
}

type cursorEntry struct {
	id     protocol.ClientID
	cursor uint64
}

// take empties the cursors acknowledged since the last take.
func (c *cursorStore) take() []cursorEntry {
	c.mu.Lock()
	batch := c.dirty
	c.dirty = map[protocol.ClientID]uint64{}
	c.mu.Unlock()
	entries := make([]cursorEntry, 0, len(batch))
	for id, cursor := range batch {
		entries = append(entries, cursorEntry{id, cursor})
	}
	return entries
}

// flush writes every cursor acknowledged since the last take now.
func (c *cursorStore) flush() { c.write(c.take()) }

// write saves cursors; one that fails is marked again for a later write.
func (c *cursorStore) write(entries []cursorEntry) {
	if len(entries) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, e := range entries {
		if _, err := c.kv.Put(ctx, e.id.String(), []byte(strconv.FormatUint(e.cursor, 10))); err != nil {
			c.g.log.Warn().Err(err).Str("client", e.id.Short()).Msg("cursor not saved")
			c.mark(e.id, e.cursor)
		}
	}
}

// stop writes the cursors still pending, then those acknowledged since:
// a cursor is never written over by an older one.
func (c *cursorStore) stop() {
	close(c.stopC)
	<-c.done
	c.flush()
}
