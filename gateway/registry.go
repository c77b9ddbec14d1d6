package gateway

import (
	"sync"

	"github.com/commsec/communicator/protocol"
)

// registry indexes the live sessions by client and by group, for the
// feeds' fan-out.
type registry struct {
	mu       sync.RWMutex
	byClient map[protocol.ClientID]map[*session]struct{}
	byGroup  map[protocol.GroupID]map[*session]struct{}
}

func newRegistry() *registry {
	return &registry{byClient: map[protocol.ClientID]map[*session]struct{}{}, byGroup: map[protocol.GroupID]map[*session]struct{}{}}
}

// Each change returns the (session, group) pairs it made or ended: the
// gateway's interest in a group's live feed counts them (interest.go).

// add registers a session in its groups; added are the pairs made.
func (r *registry) add(s *session, groups []protocol.GroupID) (added []protocol.GroupID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	addTo(r.byClient, s.id, s)
	for _, g := range groups {
		if addTo(r.byGroup, g, s) {
			added = append(added, g)
		}
	}
	return added
}

// remove ends a session; groups are the pairs ended.
func (r *registry) remove(s *session) (groups []protocol.GroupID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	removeFrom(r.byClient, s.id, s)
	for g := range r.byGroup {
		if removeFrom(r.byGroup, g, s) {
			groups = append(groups, g)
		}
	}
	return groups
}

// join and leave follow membership changes of connected clients; they
// return the sessions whose pair with g they made or ended.
func (r *registry) join(id protocol.ClientID, g protocol.GroupID) []*session {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*session
	for s := range r.byClient[id] {
		if addTo(r.byGroup, g, s) {
			out = append(out, s)
		}
	}
	return out
}

func (r *registry) leave(id protocol.ClientID, g protocol.GroupID) []*session {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*session
	for s := range r.byClient[id] {
		if removeFrom(r.byGroup, g, s) {
			out = append(out, s)
		}
	}
	return out
}

// dropGroup ends every pair of a deleted group, returning the sessions.
func (r *registry) dropGroup(g protocol.GroupID) []*session {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*session
	for s := range r.byGroup[g] {
		out = append(out, s)
	}
	delete(r.byGroup, g)
	return out
}

// client returns the sessions of a client; group those of a group's members.
func (r *registry) client(id protocol.ClientID) []*session {
	return r.list(func() map[*session]struct{} { return r.byClient[id] })
}
func (r *registry) group(g protocol.GroupID) []*session {
	return r.list(func() map[*session]struct{} { return r.byGroup[g] })
}

func (r *registry) list(set func() map[*session]struct{}) []*session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	m := set()
	out := make([]*session, 0, len(m))
	for s := range m {
		out = append(out, s)
	}
	return out
}

func (r *registry) count() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := 0
	for _, m := range r.byClient {
		n += len(m)
	}
	return n
}

func (r *registry) closeAll() {
	r.mu.RLock()
	var all []*session
	for _, m := range r.byClient {
		for s := range m {
			all = append(all, s)
		}
	}
	r.mu.RUnlock()
	for _, s := range all {
		s.shutdown()
	}
}

// addTo adds s to m[k]; false if it was there.
func addTo[K comparable](m map[K]map[*session]struct{}, k K, s *session) bool {
	if m[k] == nil {
		m[k] = map[*session]struct{}{}
	}
	if _, ok := m[k][s]; ok {
		return false
	}
	m[k][s] = struct{}{}
	return true
}

// removeFrom removes s from m[k]; false if it was not there.
func removeFrom[K comparable](m map[K]map[*session]struct{}, k K, s *session) bool {
	if _, ok := m[k][s]; !ok {
		return false
	}
	delete(m[k], s)
	if len(m[k]) == 0 {
		delete(m, k)
	}
	return true
}
