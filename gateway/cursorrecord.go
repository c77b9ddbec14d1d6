package gateway

import (
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/protocol"
)

// groupEpochs is, per group, the newest epoch whose bundle a client
// confirmed. Checked against the gateway's projection of the event log,
// it tells without any read whether the client holds the key of every
// group's current epoch (bundlesConfirmed).
type groupEpochs map[protocol.GroupID]protocol.Epoch

// raise records that the bundle of g's epoch e was confirmed.
func (m groupEpochs) raise(g protocol.GroupID, e protocol.Epoch) groupEpochs {
	if m == nil {
		m = groupEpochs{}
	}
	if e > m[g] {
		m[g] = e
	}
	return m
}

func (m groupEpochs) clone() groupEpochs {
	if len(m) == 0 {
		return nil
	}
	out := make(groupEpochs, len(m))
	for g, e := range m {
		out[g] = e
	}
	return out
}

// merge raises m to w, group by group.
func (m groupEpochs) merge(w groupEpochs) groupEpochs {
	for g, e := range w {
		m = m.raise(g, e)
	}
	return m
}

// covers reports whether, in state s, the client confirmed a bundle of
// the current epoch of every live group it is a member of. A group whose
// epoch has no bundle published yet is not covered: the client cannot
// have confirmed one.
func (m groupEpochs) covers(s *fold.State, id protocol.ClientID) bool {
	for _, gid := range s.GroupsOf(id) {
		grp := s.Groups[gid]
		if grp == nil || grp.Epoch == 0 || m[gid] < grp.Epoch {
			return false
		}
	}
	return true
}

// only keeps the groups the client is a member of in s: a group it left
// or that was deleted needs no entry (if it joins again, a new epoch
// starts, which no entry covers).
func (m groupEpochs) only(s *fold.State, id protocol.ClientID) groupEpochs {
	var out groupEpochs
	for _, gid := range s.GroupsOf(id) {
		if e, ok := m[gid]; ok {
			out = out.raise(gid, e)
		}
	}
	return out
}

// maxRecordGroups bounds the groups a stored cursor record may name.
const maxRecordGroups = 1 << 12

// record is the stored form of what the gateway keeps of a client, the
// value of its key in COMM_CURSORS:
//
//	cursor [";b" bundle] [";e" group "." epoch ("," group "." epoch)*]
//
// cursor is cursorVec's form (per shard, in decimal, separated by
// commas; before sharding, one number), bundle the highest bundle
// sequence the client confirmed, and each group (32 hex digits) with the
// newest epoch whose bundle it confirmed. Records written before these
// fields existed are the cursor alone.
func (sv saved) record() string {
	var b strings.Builder
	b.WriteString(sv.cursor.String())
	if sv.bundle > 0 {
		b.WriteString(";b")
		b.WriteString(strconv.FormatUint(sv.bundle, 10))
	}
	sep := ";e"
	for g, e := range sv.epochs {
		b.WriteString(sep)
		b.WriteString(g.String())
		b.WriteByte('.')
		b.WriteString(strconv.FormatUint(uint64(e), 10))
		sep = ","
	}
	return b.String()
}

// parseRecord reads a stored record; ok is false for one that is not
// well-formed (it is treated as nothing acknowledged or confirmed:
// redelivery, and every bundle pushed).
func parseRecord(s string) (sv saved, ok bool) {
	parts := strings.Split(s, ";")
	if sv.cursor, ok = parseCursor(parts[0]); !ok {
		return saved{}, false
	}
	for _, p := range parts[1:] {
		switch {
		case strings.HasPrefix(p, "b"):
			n, err := strconv.ParseUint(p[1:], 10, 64)
			if err != nil {
				return saved{}, false
			}
			sv.bundle = n
		case strings.HasPrefix(p, "e"):
			if sv.epochs, ok = parseEpochs(p[1:]); !ok {
				return saved{}, false
			}
		default:
			return saved{}, false
		}
	}
	return sv, true
}

func parseEpochs(s string) (groupEpochs, bool) {
	items := strings.Split(s, ",")
	if len(items) > maxRecordGroups {
		return nil, false
	}
	m := make(groupEpochs, len(items))
	for _, it := range items {
		gs, es, found := strings.Cut(it, ".")
		if !found || len(gs) != 2*protocol.GroupIDSize {
			return nil, false
		}
		var g protocol.GroupID
		if _, err := hex.Decode(g[:], []byte(gs)); err != nil {
			return nil, false
		}
		e, err := strconv.ParseUint(es, 10, 32)
		if err != nil {
			return nil, false
		}
		m = m.raise(g, protocol.Epoch(e))
	}
	return m, true
}
