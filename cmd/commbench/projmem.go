package main

// The projmem figure: the memory the projection of the event log
// (events.Projection, which every relay and gateway holds, and the
// keyserver too) takes per registered client and per group membership.

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/keys"
)

// projGroupSize is the size of projmem's groups (fanout5k's).
const projGroupSize = 5

// projMem builds a projection of r.p.projClients registrations, then of
// groups of projGroupSize holding r.p.projMemberships memberships (each
// client in memberships/clients groups), applying signed records as a
// service applies them from the log, and reads the Go heap in use after
// garbage collection before, between and after.
func (r *runner) projMem(ctx context.Context) error {
	n, m := r.p.projClients, r.p.projMemberships
	ks, err := keys.GenerateSigningKey(nil)
	if err != nil {
		return err
	}
	b := &projBuilder{ks: ks, now: time.Now()}
	base := heapInUse()
	p := events.NewProjection(ks.Public())
	t := time.Now()
	if err := b.apply(ctx, p, n, b.registration); err != nil {
		return err
	}
	afterClients := heapInUse()
	r.say("projection of %s clients in %v", count(n), time.Since(t).Round(time.Millisecond))
	groups := m / projGroupSize
	b.clients = n
	if err := b.apply(ctx, p, groups, b.group); err != nil {
		return err
	}
	afterGroups := heapInUse()
	runtime.KeepAlive(p)
	r.say("and %s groups of %d in %v", count(groups), projGroupSize, time.Since(t).Round(time.Millisecond))
	perClient := float64(afterClients-base) / float64(n)
	perMember := float64(afterGroups-afterClients) / float64(groups*projGroupSize)
	r.add(row{figure: fmt.Sprintf("projection memory (every relay and gateway): %s clients, %s memberships in groups of %d",
		count(n), count(groups*projGroupSize), projGroupSize),
		ours:  fmt.Sprintf("%.0f B per client; %.0f B per membership", perClient, perMember),
		ratio: nanRatio, checked: nanRatio})
	r.note("projmem: Go heap in use after GC, before and after applying %s signed registrations, then %s groups "+
		"(a GroupCreated and a MembersAdded each; each client in %d groups); per membership includes its group's share "+
		"(1/%d of a group); total %.1f MiB; at 1,000,000 clients and 2 memberships each: %.2f GiB per service",
		count(n), count(groups), groups*projGroupSize/max(n, 1), projGroupSize, float64(afterGroups-base)/(1<<20),
		(1e6*perClient+2e6*perMember)/(1<<30))
	return nil
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// projBuilder signs synthetic events on every core and applies them in
// order to a projection, as a service's feed would.
type projBuilder struct {
	ks      *keys.SigningKey
	now     time.Time
	clients int
	seq     uint64
}

// apply signs the events of items [0, n), build(i) giving item i's in
// chain order, on every core, and applies them in the order they come.
func (b *projBuilder) apply(ctx context.Context, p *events.Projection, n int, build func(i int) []signed) error {
	out := make(chan []signed, 1024)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				out <- build(i)
			}
		})
	}
	go func() { wg.Wait(); close(out) }()
	var err error
	for evs := range out {
		for _, ev := range evs {
			if err != nil {
				continue // drain the signers
			}
			b.seq++
			if _, aerr := p.Apply(events.Stored{Seq: b.seq, Subject: events.Subject(ev.aggregate), Record: ev.rec, Time: b.now}); aerr != nil {
				err = fmt.Errorf("projmem: applying event %d: %w", b.seq, aerr)
			}
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// sign completes e as the keyserver's writer would (the next in its
// aggregate's chain after prev) and signs it.
func (b *projBuilder) sign(e *record.Event, seq uint64, prev [protocol.HashSize]byte) signed {
	e.Seq, e.Prev, e.Time, e.Actor = seq, prev, b.now.UnixNano(), b.ks.Public()
	rec, err := record.Sign(e, b.ks)
	if err != nil {
		panic(fmt.Sprintf("commbench: signing an event: %v", err)) // a bug: the event is built here
	}
	return signed{e.Aggregate(), rec}
}

// registration is client i's registration; its key-wrap key is its id
// (the projection does not look inside keys).
func (b *projBuilder) registration(i int) []signed {
	id := projClient(i)
	return []signed{b.sign(record.NewClientRegistered(id, id, ""), 1, [protocol.HashSize]byte{})}
}

// group is group j, created then given its projGroupSize members, the
// clients j*size .. j*size+size-1 modulo the clients.
func (b *projBuilder) group(j int) []signed {
	var gid protocol.GroupID
	gid[0] = 0x9a
	binary.BigEndian.PutUint64(gid[8:], uint64(j))
	created := b.sign(record.NewGroupCreated(gid, fmt.Sprintf("g%d", j), record.Policy{}), 1, [protocol.HashSize]byte{})
	members := make([]protocol.ClientID, projGroupSize)
	for k := range members {
		members[k] = projClient((j*projGroupSize + k) % b.clients)
	}
	added := b.sign(record.NewEpoch(record.MembersAdded, gid, 1, members, bundle.MemberDigest(members), ""), 2, created.rec.Hash())
	return []signed{created, added}
}

func projClient(i int) protocol.ClientID {
	var id protocol.ClientID
	id[0] = 0xc2
	binary.BigEndian.PutUint64(id[24:], uint64(i))
	return id
}
