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

func (c *cursorStore) loop() {
	defer close(c.done)
	t := time.NewTicker(time.Second)
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

// flush writes every cursor acknowledged since the last flush.
func (c *cursorStore) flush() {
	c.mu.Lock()
	batch := c.dirty
	c.dirty = map[protocol.ClientID]uint64{}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for id, cursor := range batch {
		if _, err := c.kv.Put(ctx, id.String(), []byte(strconv.FormatUint(cursor, 10))); err != nil {
			c.g.log.Warn().Err(err).Str("client", id.Short()).Msg("cursor not saved")
			c.mark(id, cursor)
		}
	}
}

func (c *cursorStore) stop() {
	close(c.stopC)
	<-c.done
	c.flush()
}
