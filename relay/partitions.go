package relay

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/streams"
)

// partitions claims and renews this relay's fair share of the partitions.
// Each relay announces itself with a "member.<id>" key; partition p is
// owned by whoever holds the "part.<p>" key. Keys expire after the bucket's TTL
// unless renewed, so a dead relay's partitions are free again within that
// time; renewals are compare-and-swap, so a relay that lost a lease learns
// it on its next renewal and stops serving the partition.
//
// A relay may also be stopped (a paused container, a long GC, a
// frozen VM) past its lease's expiry, and wake with a queue of messages
// for partitions another relay now owns. So each lease has a deadline,
// taken before the write that created or renewed it, less a margin: the
// server's expiry clock starts later than that. Every decision checks
// its partition's deadline first (holds); past it the relay answers
// "retry" until a renewal succeeds, which proves nobody took the lease
// meanwhile, or fails, which drops the partition.
type partitions struct {
	r    *Relay
	kv   jetstream.KeyValue
	ttl  time.Duration // the bucket's: a lease not renewed within it expires
	mu   sync.Mutex    // held across a whole tick; holds never takes it
	held map[int]*lease
	// until is each partition's lease deadline (nil: not held), read by
	// every decision without a lock.
	until [streams.Partitions]atomic.Pointer[time.Time]
	stopC chan struct{}
	done  chan struct{}
}

type lease struct {
	revision uint64
	sub      *nats.Subscription
}

// leaseMargin is taken off a lease's deadline for the clocks of the
// relay and the servers running at slightly different rates.
func (p *partitions) leaseMargin() time.Duration { return p.ttl / 10 }

// extend records that partition n's lease was written at or after
// writtenAfter.
func (p *partitions) extend(n int, writtenAfter time.Time) {
	deadline := writtenAfter.Add(p.ttl - p.leaseMargin())
	p.until[n].Store(&deadline)
}

// holds reports whether this relay may decide for partition n at now: it
// holds n's lease and the lease cannot have expired yet.
func (p *partitions) holds(n int, now time.Time) bool {
	deadline := p.until[n].Load()
	return deadline != nil && now.Before(*deadline)
}

// startPartitions claims the relay's first share of partitions and
// keeps its leases from then on; r.parts is set before the first claim.
func startPartitions(ctx context.Context, r *Relay) error {
	kv, err := streams.BindKV(ctx, r.js, streams.Relays)
	if err != nil {
		return err
	}
	status, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("relay: lease bucket: %w", err)
	}
	if status.TTL() <= 0 {
		return fmt.Errorf("relay: bucket %s has no TTL: leases would never expire", streams.Relays)
	}
	p := &partitions{r: r, kv: kv, ttl: status.TTL(), held: map[int]*lease{}, stopC: make(chan struct{}), done: make(chan struct{})}
	r.parts = p // before the first claim: dispatch reads it
	p.tick(ctx)
	go p.loop()
	if err := r.nc.FlushTimeout(10 * time.Second); err != nil { // the partitions' subscriptions reach the server before Start returns
		return fmt.Errorf("relay: subscribing to partitions: %w", err)
	}
	return nil
}

func (p *partitions) loop() {
	defer close(p.done)
	t := time.NewTicker(p.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-p.stopC:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), p.ttl/3)
			p.tick(ctx)
			cancel()
		}
	}
}

// tick renews what is held, then moves toward the fair share: release
// extras, claim free partitions in this relay's order of preference.
func (p *partitions) tick(ctx context.Context) {
	if _, err := p.kv.Put(ctx, "member."+p.r.cfg.ID, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		p.r.log.Warn().Err(err).Msg("presence not renewed")
	}
	share := p.share(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.renew(ctx)
	order := p.preference()
	for i := len(order) - 1; i >= 0 && len(p.held) > share; i-- {
		if _, held := p.held[order[i]]; held {
			p.release(ctx, order[i])
		}
	}
	var claimed []int
	for _, n := range order {
		if _, held := p.held[n]; !held && len(p.held) < share && p.claim(ctx, n) {
			claimed = append(claimed, n)
		}
	}
	p.sinceClaimed(ctx, claimed)
	p.r.Metrics.partitions.Store(int64(len(p.held)))
}

// share is this relay's fair share: the partitions over the live relays.
func (p *partitions) share(ctx context.Context) int {
	lister, err := p.kv.ListKeysFiltered(ctx, "member.*")
	if err != nil {
		return streams.Partitions
	}
	n := 0
	for range lister.Keys() {
		n++
	}
	n = max(n, 1)
	return (streams.Partitions + n - 1) / n
}

// preference orders the partitions by rendezvous hash with this relay's
// id, most preferred first, so that relays claim different partitions and
// a partition tends to return to the same relay.
func (p *partitions) preference() []int {
	type scored struct {
		n     int
		score uint64
	}
	all := make([]scored, streams.Partitions)
	for n := range all {
		h := fnv.New64a()
		h.Write([]byte(p.r.cfg.ID + "/" + strconv.Itoa(n)))
		all[n] = scored{n, h.Sum64()}
	}
	slices.SortFunc(all, func(a, b scored) int {
		if a.score > b.score {
			return -1
		}
		return 1
	})
	out := make([]int, len(all))
	for i, s := range all {
		out[i] = s.n
	}
	return out
}

// renew renews every held lease at once (a lease's deadline counts from
// the moment its renewal is sent, so renewals must not queue behind each
// other): as one atomic batch, one synced write for all of them; if the
// batch is not applied, each on its own, which also tells which leases
// were lost, and drops them.
func (p *partitions) renew(ctx context.Context) {
	if len(p.held) == 0 {
		return
	}
	before := p.r.cfg.Now()
	err := p.renewBatch(ctx, before)
	if err == nil {
		return
	}
	p.r.Metrics.leases.Inc(leaseBatchRefused, "")
	p.r.log.Warn().Err(err).Int("leases", len(p.held)).Msg("lease renewals not applied as one batch; renewing each")
	// The batch's time may be used up (no answer): the renewals one by
	// one get a tick of their own.
	ctx, cancel := context.WithTimeout(context.Background(), p.ttl/3)
	defer cancel()
	p.renewEach(ctx, before)
}

// renewBatch renews every held lease in one atomic batch (each renewal a
// compare-and-swap on its lease's revision, as kv.Update does): all are
// renewed, or none. A batch is stored in consecutive sequences, so the
// commit's sequence gives each lease's new revision.
func (p *partitions) renewBatch(ctx context.Context, before time.Time) error {
	ns := make([]int, 0, len(p.held))
	for n := range p.held {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	msgs := make([]*nats.Msg, len(ns))
	for i, n := range ns {
		msgs[i] = &nats.Msg{Subject: streams.KVPrefix(streams.Relays) + leaseKey(n), Data: []byte(p.r.cfg.ID),
			Header: nats.Header{jetstream.ExpectedLastSubjSeqHeader: []string{strconv.FormatUint(p.held[n].revision, 10)}}}
	}
	f, err := streams.PublishAtomic(p.r.js, msgs)
	if err != nil {
		return err
	}
	var ack *jetstream.PubAck
	select {
	case ack = <-f.Ok():
	case err := <-f.Err():
		return err
	case <-ctx.Done():
		return fmt.Errorf("relay: lease renewals: %w", ctx.Err())
	}
	if ack.Sequence < uint64(len(ns)) {
		return fmt.Errorf("relay: lease renewals acknowledged at sequence %d, below the batch's %d", ack.Sequence, len(ns))
	}
	first := ack.Sequence - uint64(len(ns)-1)
	for i, n := range ns {
		p.held[n].revision = first + uint64(i)
		p.extend(n, before)
	}
	p.r.Metrics.leaseBatches.Inc()
	p.r.Metrics.leasesBatched.Add(float64(len(ns)))
	return nil
}

// renewEach renews every held lease with its own write, all at once,
// then drops the ones that were lost. A lease whose renewal fails but
// that holds this relay's id at a newer revision was renewed by the
// batch sent at batchSent, whose answer did not come: it is kept, its
// deadline counted from then.
func (p *partitions) renewEach(ctx context.Context, batchSent time.Time) {
	type result struct {
		n        int
		before   time.Time
		revision uint64
		err      error
	}
	results := make(chan result, len(p.held))
	var wg sync.WaitGroup
	for n, l := range p.held {
		wg.Go(func() {
			before := p.r.cfg.Now()
			rev, err := p.kv.Update(ctx, leaseKey(n), []byte(p.r.cfg.ID), l.revision)
			results <- result{n, before, rev, err}
		})
	}
	wg.Wait()
	close(results)
	for res := range results {
		l := p.held[res.n]
		if res.err != nil {
			if rev, ours := p.renewedByBatch(ctx, res.n, l.revision); ours {
				l.revision = rev
				p.extend(res.n, batchSent)
				continue
			}
			p.r.log.Warn().Err(res.err).Int("partition", res.n).Msg("lease lost")
			p.r.Metrics.leases.Inc(leaseLost, "")
			p.until[res.n].Store(nil)
			p.r.grace.released(res.n)
			l.sub.Unsubscribe()
			delete(p.held, res.n)
			continue
		}
		l.revision = res.revision
		p.extend(res.n, res.before)
	}
}

// renewedByBatch reports whether partition n's lease, held at revision,
// now holds this relay's id at a newer revision: only this relay writes
// its id, so the batch of renewals was applied after all.
func (p *partitions) renewedByBatch(ctx context.Context, n int, revision uint64) (uint64, bool) {
	e, err := p.kv.Get(ctx, leaseKey(n))
	if err != nil || string(e.Value()) != p.r.cfg.ID || e.Revision() <= revision {
		return 0, false
	}
	return e.Revision(), true
}

// sinceClaimed tells the grace book where the log ended once the
// partitions just claimed were held: epochs that begin later are counted
// by this relay alone (grace.go).
func (p *partitions) sinceClaimed(ctx context.Context, claimed []int) {
	if len(claimed) == 0 {
		return
	}
	end, err := p.r.events.LastSeq(ctx)
	if err != nil {
		p.r.log.Warn().Err(err).Msg("event log end unknown: the previous epochs of the claimed partitions get no grace")
		return
	}
	for _, n := range claimed {
		p.r.grace.since[n].Store(end)
	}
}

func (p *partitions) claim(ctx context.Context, n int) bool {
	before := p.r.cfg.Now()
	rev, err := p.kv.Create(ctx, leaseKey(n), []byte(p.r.cfg.ID))
	if err != nil {
		if !isCASFailure(err) { // taken by another relay: 10071, or 10164 on replicated buckets
			p.r.log.Warn().Err(err).Int("partition", n).Msg("claim failed")
		}
		return false
	}
	p.r.accepted.forgetPartition(n)
	p.r.grace.claimed(n) // sinceClaimed sets the log's end

	p.extend(n, before)
	sub, err := p.r.nc.Subscribe(streams.PartitionSubject(n), p.r.dispatch)
	if err != nil {
		p.until[n].Store(nil)
		p.kv.Delete(ctx, leaseKey(n), jetstream.LastRevision(rev))
		return false
	}
	sub.SetPendingLimits(1<<16, 256<<20)
	p.held[n] = &lease{revision: rev, sub: sub}
	p.r.Metrics.leases.Inc(leaseClaimed, "")
	p.r.log.Info().Int("partition", n).Msg("partition claimed")
	return true
}

// release stops serving n, then frees its lease for another relay.
func (p *partitions) release(ctx context.Context, n int) {
	l := p.held[n]
	l.sub.Drain()
	delete(p.held, n)
	p.until[n].Store(nil)
	p.r.grace.released(n)
	p.kv.Delete(ctx, leaseKey(n), jetstream.LastRevision(l.revision))
	p.r.Metrics.leases.Inc(leaseReleased, "")
	p.r.log.Info().Int("partition", n).Msg("partition released")
}

func leaseKey(n int) string { return "part." + strconv.Itoa(n) }

func (p *partitions) owned() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]int, 0, len(p.held))
	for n := range p.held {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// close releases every partition and withdraws the presence key.
func (p *partitions) close() {
	close(p.stopC)
	<-p.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := range p.held {
		p.release(ctx, n)
	}
	p.r.Metrics.partitions.Store(0)
	p.kv.Delete(ctx, "member."+p.r.cfg.ID)
}
