package gateway

import (
	"sync"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/streams"
)

// deliveries numbers a session's Deliver frames 1, 2, 3... (the cursor of
// docs/PROTOCOL.md 5.6, strictly increasing on a channel) and maps each
// number back to its shard and stream sequence until the client
// acknowledges it. A DeliverAck(c) is cumulative: it acknowledges, on
// each shard, the highest sequence delivered under a number up to c.
//
// It holds at most maxUnacked deliveries: a client that does not
// acknowledge is ended (slow_client) rather than keeping the gateway's
// memory, and catches up from its cursor when it comes back.
//
// A message taken in stream order but not due to the client (its own, or
// of an epoch it may not read) is skipped: it is acknowledged with the
// last delivery numbered before it, so that a client's cursor passes the
// messages it sent and a reconnect finds nothing pending.
//
// Each delivery also records the highest bundle sequence queued before
// it: the client processes frames in order, so acknowledging the
// delivery confirms those bundles too (bundles.go skips them at the next
// connect).
type deliveries struct {
	mu     sync.Mutex
	first  uint64      // the number of unacked[0]
	last   uint64      // the last number given
	unack  []delivered // the deliveries not acknowledged yet, in order
	bundle uint64      // the highest bundle sequence queued so far
	skips  []skipped
	// confirmed is the highest bundle sequence queued before an
	// acknowledged delivery.
	confirmed uint64
	// queuedEpochs are the bundles queued and not confirmed yet, in
	// order; epochs is, per group, the newest epoch whose bundle the
	// client confirmed (on this connection or an earlier one).
	queuedEpochs []bundleRef
	epochs       groupEpochs
}

// bundleRef is a queued bundle: its sequence and what it keys.
type bundleRef struct {
	seq   uint64
	group protocol.GroupID
	epoch protocol.Epoch
}

// skipped is a message not due, acknowledged with delivery after.
type skipped struct {
	after uint64
	shard uint8
	seq   uint64
}

type delivered struct {
	shard  uint8
	seq    uint64
	bundle uint64
}

// maxUnacked bounds a session's deliveries awaiting acknowledgement: 16
// times the default queue, far beyond what a client that acknowledges
// every 32 deliveries leaves open.
const maxUnacked = 4096

// add numbers a delivery of shard's sequence seq; false: the client left
// maxUnacked deliveries unacknowledged.
func (d *deliveries) add(shard int, seq uint64) (n uint64, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.unack) >= maxUnacked {
		return 0, false
	}
	if len(d.unack) == 0 {
		d.first = d.last + 1
		d.unack = d.unack[:0]
	}
	d.last++
	d.unack = append(d.unack, delivered{uint8(shard), seq, d.bundle})
	return d.last, true
}

// skip records that shard's message at seq, taken in order, was not due;
// acked is called at once if every delivery is acknowledged already.
func (d *deliveries) skip(shard int, seq uint64, acked func(shard int, seq uint64)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.unack) == 0 {
		acked(shard, seq)
		return
	}
	if n := len(d.skips); n > 0 && d.skips[n-1].after == d.last && d.skips[n-1].shard == uint8(shard) {
		d.skips[n-1].seq = seq // at most one per (delivery, shard): bounded by maxUnacked × MaxShards
		return
	}
	d.skips = append(d.skips, skipped{d.last, uint8(shard), seq})
}

// bundleQueued records that the bundle at seq was queued; body is the
// bundle, whose group and epoch are confirmed with it if it is member's
// (a body that does not parse, or names another member, confirms no
// group's epoch: that group's bundles are pushed again).
func (d *deliveries) bundleQueued(seq uint64, body []byte, member protocol.ClientID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.bundle = max(d.bundle, seq)
	if b, err := bundle.Parse(body); err == nil && b.Member == member && len(d.queuedEpochs) < maxUnacked {
		d.queuedEpochs = append(d.queuedEpochs, bundleRef{seq, b.Group, b.Epoch})
	}
}

// confirmEpochs moves the queued bundles up to the confirmed sequence
// into epochs; d.mu is held.
func (d *deliveries) confirmEpochs() {
	k := 0
	for k < len(d.queuedEpochs) && d.queuedEpochs[k].seq <= d.confirmed {
		b := d.queuedEpochs[k]
		d.epochs = d.epochs.raise(b.group, b.epoch)
		k++
	}
	d.queuedEpochs = append(d.queuedEpochs[:0], d.queuedEpochs[k:]...)
}

// confirmedEpochs is a copy of the epochs confirmed per group.
func (d *deliveries) confirmedEpochs() groupEpochs {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.epochs.clone()
}

// ack acknowledges every delivery numbered up to c, calling acked with
// the highest sequence of each shard it covers; false: c is above every
// number given (ack_beyond_delivered), and nothing changes.
func (d *deliveries) ack(c uint64, acked func(shard int, seq uint64)) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c > d.last {
		return false
	}
	if len(d.unack) == 0 || c < d.first {
		return true // acknowledged already
	}
	n := int(c - d.first + 1)
	var top [streams.MaxShards]uint64
	var seen [streams.MaxShards]bool
	for _, e := range d.unack[:n] {
		top[e.shard], seen[e.shard] = max(top[e.shard], e.seq), true
		d.confirmed = max(d.confirmed, e.bundle)
	}
	d.confirmEpochs()
	d.unack = append(d.unack[:0], d.unack[n:]...) // shifts at most maxUnacked entries
	if len(d.unack) == 0 && cap(d.unack) > 64 {
		d.unack = nil // an idle session keeps no burst's array
	}
	d.first = c + 1
	k := 0
	for k < len(d.skips) && d.skips[k].after <= c {
		e := d.skips[k]
		top[e.shard], seen[e.shard] = max(top[e.shard], e.seq), true
		k++
	}
	d.skips = append(d.skips[:0], d.skips[k:]...)
	for shard, ok := range seen {
		if ok {
			acked(shard, top[shard])
		}
	}
	return true
}

// confirmedBundle is the highest bundle sequence the client confirmed.
func (d *deliveries) confirmedBundle() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.confirmed
}

// queuedBundle is the session's bundle watermark: every bundle of the
// client up to it was queued.
func (d *deliveries) queuedBundle() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bundle
}

// startBundles starts the watermarks at what the client confirmed on an
// earlier connection.
func (d *deliveries) startBundles(confirmed uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.bundle, d.confirmed = max(d.bundle, confirmed), max(d.confirmed, confirmed)
}

// startEpochs starts the epochs confirmed per group at what the client
// confirmed on earlier connections.
func (d *deliveries) startEpochs(e groupEpochs) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.epochs = e.clone()
}
