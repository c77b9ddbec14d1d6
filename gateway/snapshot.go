package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/streams"
)

// A gateway's snapshot carries, over a graceful restart, what it keeps in
// memory of its recent clients (the LRU of cursorStore: after Close, every
// client it served lately), so that their reconnects to the restarted
// gateway need no read of their records.
//
// At Close, after the last batch of cursors, the gateway writes it to
// COMM_CURSORS under keys of its own, "gateway.<name>.<i>" for chunks
// i = 0..n-1 (each under the connection's max payload). A chunk is text:
//
//	"snapshot" SP id SP i SP n LF
//	(client SP record LF)*
//
// id (decimal, the writing time in Unix nanoseconds) is the same in
// every chunk of a snapshot, client is 64 hex digits and record the form
// of the client's record (cursorrecord.go).
//
// At Start the gateway reads the chunks (n calls) and the current
// records of the clients they name, 1024 a call (a direct get of the
// bucket's last message per key, "multi_last"), and keeps for each
// client the higher of its entry and its record: both are at most what
// the client acknowledged, and the result is never behind the record,
// whichever gateway wrote it, before or after the snapshot. A client
// with no record keeps its entry (no cursor was written that it could be
// behind); if a read did not come back whole, its clients are left out
// (their connects read their records). The chunks are deleted once read:
// a snapshot serves one start.

// snapshotChunks bounds the chunks of a snapshot read at Start.
const snapshotChunks = 256

// snapshotKey is the key of chunk i of the snapshot of gateway name.
func snapshotKey(name string, i int) string { return "gateway." + name + "." + strconv.Itoa(i) }

// writeSnapshot saves the recent clients' records as the gateway's
// snapshot; the last batch of cursors was written before.
func (c *cursorStore) writeSnapshot() {
	c.mu.Lock()
	var lines []string
	c.recent.each(func(id protocol.ClientID, sv saved) {
		lines = append(lines, id.String()+" "+sv.record()+"\n")
	})
	c.mu.Unlock()
	if len(lines) == 0 {
		return
	}
	chunks := splitChunks(lines, c.chunkSize())
	id := strconv.FormatInt(time.Now().UnixNano(), 10)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Chunk 0 last: a snapshot cut short is told by its chunks' ids.
	for i := len(chunks) - 1; i >= 0; i-- {
		head := fmt.Sprintf("snapshot %s %d %d\n", id, i, len(chunks))
		if _, err := c.kv.Put(ctx, snapshotKey(c.g.cfg.Name, i), append([]byte(head), chunks[i]...)); err != nil {
			c.g.log.Warn().Err(err).Msg("cursor snapshot not saved")
			return
		}
	}
	c.g.log.Info().Int("clients", len(lines)).Int("chunks", len(chunks)).Msg("cursor snapshot saved")
}

// chunkSize is the room for a chunk's lines in one message.
func (c *cursorStore) chunkSize() int {
	n := int(c.g.nc.MaxPayload())
	if n <= 0 || n > 1<<20 {
		n = 1 << 20
	}
	return n - 4096 // the header line, the message's headers
}

func splitChunks(lines []string, size int) [][]byte {
	var chunks [][]byte
	var cur []byte
	for _, l := range lines {
		if len(cur) > 0 && len(cur)+len(l) > size {
			chunks = append(chunks, cur)
			cur = nil
		}
		cur = append(cur, l...)
	}
	return append(chunks, cur)
}

// loadSnapshot reads the gateway's snapshot into the recent clients, if
// it is still the latest word on every client in it; it returns how
// many entries it loaded.
func (c *cursorStore) loadSnapshot(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	entries, n, err := c.readSnapshot(ctx)
	if n > 0 {
		defer c.deleteSnapshot(ctx, n)
	}
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			c.g.log.Warn().Err(err).Msg("cursor snapshot not loaded")
		}
		return 0
	}
	entries = c.withRecords(ctx, entries)
	c.mu.Lock()
	for i := len(entries) - 1; i >= 0; i-- { // the least recent first
		c.recent.put(entries[i].id, entries[i].sv)
	}
	c.mu.Unlock()
	c.g.log.Info().Int("clients", len(entries)).Msg("cursor snapshot loaded")
	return len(entries)
}

// readSnapshot reads every chunk; n is how many chunk keys to delete.
func (c *cursorStore) readSnapshot(ctx context.Context) (entries []cursorEntry, n int, err error) {
	var id string
	for i := 0; i == 0 || i < n; i++ {
		e, err := c.kv.Get(ctx, snapshotKey(c.g.cfg.Name, i))
		if err != nil {
			return nil, n, err
		}
		body, cid, count, ok := parseChunkHead(e.Value(), i)
		if !ok || (i > 0 && cid != id) || (i == 0 && (count < 1 || count > snapshotChunks)) {
			return nil, max(n, 1), errors.New("gateway: a malformed or torn cursor snapshot")
		}
		if i == 0 {
			id, n = cid, count
		}
		if entries, err = parseChunk(body, entries); err != nil {
			return nil, n, err
		}
	}
	return entries, n, nil
}

func parseChunkHead(v []byte, i int) (body []byte, id string, n int, ok bool) {
	head, body, found := bytes.Cut(v, []byte("\n"))
	f := strings.Fields(string(head))
	if !found || len(f) != 4 || f[0] != "snapshot" || f[2] != strconv.Itoa(i) {
		return nil, "", 0, false
	}
	n, err := strconv.Atoi(f[3])
	return body, f[1], n, err == nil
}

func parseChunk(body []byte, entries []cursorEntry) ([]cursorEntry, error) {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, len(body)+1)
	for sc.Scan() {
		idHex, rec, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			return nil, errors.New("gateway: a malformed cursor snapshot line")
		}
		id, err := protocol.ParseClientID(idHex)
		if err != nil {
			return nil, fmt.Errorf("gateway: cursor snapshot: %w", err)
		}
		sv, ok := parseRecord(rec)
		if !ok {
			return nil, errors.New("gateway: a malformed record in the cursor snapshot")
		}
		entries = append(entries, cursorEntry{id, sv})
	}
	return entries, sc.Err()
}

// deleteSnapshot deletes the n chunks read: a snapshot serves one start.
func (c *cursorStore) deleteSnapshot(ctx context.Context, n int) {
	for i := range n {
		if err := c.kv.Delete(ctx, snapshotKey(c.g.cfg.Name, i)); err != nil {
			c.g.log.Warn().Err(err).Msg("cursor snapshot not deleted")
			return
		}
	}
}

// recordsPerRead is the most records one multi_last read returns.
const recordsPerRead = 1024

// withRecords raises each entry to its client's current record, reading
// them recordsPerRead a call; the entries of a read that failed are left
// out.
func (c *cursorStore) withRecords(ctx context.Context, entries []cursorEntry) []cursorEntry {
	out := entries[:0:0]
	for len(entries) > 0 {
		n := min(len(entries), recordsPerRead)
		recs, err := c.readRecords(ctx, entries[:n])
		if err != nil {
			c.g.log.Warn().Err(err).Int("clients", n).Msg("records of snapshot entries unavailable; read at connect")
		} else {
			for _, e := range entries[:n] {
				out = append(out, cursorEntry{e.id, e.sv.merge(recs[e.id])})
			}
		}
		entries = entries[n:]
	}
	return out
}

// readRecords reads the current records of the entries' clients in one
// direct get of the last message of each key; without an error, a client
// it has no record of has none (or a deleted one).
func (c *cursorStore) readRecords(ctx context.Context, entries []cursorEntry) (map[protocol.ClientID]saved, error) {
	subjects := make([]string, len(entries))
	for i, e := range entries {
		subjects[i] = streams.KVPrefix(streams.Cursors) + e.id.String()
	}
	req, err := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
		Batch     int      `json:"batch"`
	}{subjects, len(subjects)})
	if err != nil {
		return nil, err
	}
	inbox := c.g.nc.NewInbox()
	sub, err := c.g.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := c.g.nc.PublishRequest(c.g.apiSubject("DIRECT.GET."+streams.KVStream(streams.Cursors)), inbox, req); err != nil {
		return nil, err
	}
	recs := map[protocol.ClientID]saved{}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return recs, err
		}
		if status := m.Header.Get("Status"); status != "" {
			switch {
			case status == "404": // no record at all
				return recs, nil
			case status == "204" && m.Header.Get("Nats-Num-Pending") == "0":
				return recs, nil // the end of the batch, every record sent
			case status == "204":
				return recs, errors.New("gateway: reading cursor records: a partial batch")
			}
			return recs, fmt.Errorf("gateway: reading cursor records: status %s %s", status, m.Header.Get("Description"))
		}
		id, err := protocol.ParseClientID(strings.TrimPrefix(m.Header.Get(streams.HeaderNatsSubject), streams.KVPrefix(streams.Cursors)))
		if err != nil {
			continue
		}
		if op := m.Header.Get("KV-Operation"); op != "" {
			continue // deleted or purged: no record
		}
		if r, ok := parseRecord(string(m.Data)); ok {
			recs[id] = r
		} else {
			recs[id] = saved{} // malformed: treated as nothing acknowledged
		}
	}
}
