package gateway

import "sync"

// A session receives the accepted messages of its groups in stream order,
// each at most once per connection, from two sources; it keeps one such
// machine per shard of the accepted messages (each shard is a sequence
// space of its own):
//
//   - catch-up: a pass reads the stored messages of the client's groups
//     from next to the end of the stream, on the session's own goroutine,
//     waiting for room in the client's queue (and, for a message whose
//     epoch the gateway's view of the log has not reached, for the log);
//   - live: the gateway's feed offers each new message to the sessions of
//     its group, never waiting for anything. The live feed is at most
//     once (core NATS): a message it lost (a gap, a dropped message, a
//     reconnect: interest.go) restarts the machine from its cursor.
//
// next, the first stream sequence not delivered yet, keeps the two from
// overlapping: the cursor of a DeliverAck covers every message below it,
// so a session never delivers out of stream order.
//
// The states, and what moves a session between them (delivery's methods;
// deliverystate_test.go runs every transition from in-memory messages):
//
//	state       event                      next        action
//	catchUp     offer                      catchUp     keep it in pending (pending full: catchUpNext)
//	catchUp     groups changed             catchUpAll  drop pending
//	catchUp     pass ends                  live        hand pending over first (passEnd returns it)
//	catchUpNext offer                      catchUpNext (the next pass reads it from the stream)
//	catchUpNext groups changed             catchUpAll
//	catchUpNext pass ends                  catchUp     a new pass, from next
//	catchUpAll  offer, groups changed      catchUpAll
//	catchUpAll  pass ends                  catchUp     a new pass, from the cursor (the client drops what it has, by its counters)
//	live        offer                      live        deliver it now
//	live        offer, epoch not in view   catchUpNext start a pass: it waits for the log on its own goroutine
//	live        groups changed             live        (a joiner reads epochs from its join on, which come later)
//	catchUp*    restart                    catchUpAll  drop pending
//	live        restart                    catchUp     start a pass from the cursor, on its own goroutine
//	any         rewind(from)               (as restart) the cursor first lowered below from
//	any         close                      closed
//
// restart is a join of the client to a group of the shard (the gateway
// may have taken the group's interest after the group's first messages
// of the client's epochs were stored) or a message the live feed lost.
type deliveryState uint8

const (
	catchUp     deliveryState = iota // a pass runs; live messages wait in pending
	catchUpNext                      // a pass runs; another must follow, from next (pending was dropped)
	catchUpAll                       // a pass runs; another must follow, from the cursor (the groups changed)
	live                             // live messages are delivered as they come
	closed                           // the session ended
)

func (s deliveryState) String() string {
	return [...]string{"catch-up", "catch-up-next", "catch-up-all", "live", "closed"}[s]
}

// maxPending bounds the live messages a session keeps during a pass; past
// it, the next pass reads them from the stream instead.
const maxPending = 1024

// delivery is the state machine of one session's delivery. It is safe for
// concurrent use by the feed, the session's pass and its reader.
type delivery struct {
	mu      sync.Mutex
	state   deliveryState
	cursor  uint64    // acknowledged: at the session's start, then by DeliverAcks
	next    uint64    // the first stream sequence not delivered yet
	pending []message // live messages offered during a pass
}

// init starts a session's delivery after its cursor, in catchUp: the
// session runs its first pass.
func (d *delivery) init(cursor uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.state, d.cursor, d.next = catchUp, cursor, cursor+1
}

// current is the state now.
func (d *delivery) current() deliveryState {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state
}

// from is where a pass starts reading.
func (d *delivery) from() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.next
}

// offerResult says what the feed does with an offered message.
type offerResult uint8

const (
	offerKept      offerResult = iota // kept for later, or not due (read again by a pass)
	offerDeliver                      // deliver it now
	offerStartPass                    // the session left live: start a pass
)

// offer is the live feed's hand-over of m; inView reports whether the
// gateway's view of the log has reached m's epoch (without it, whether
// the client may read m cannot be decided yet).
func (d *delivery) offer(m message, inView bool) offerResult {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.state {
	case catchUp:
		if len(d.pending) < maxPending {
			d.pending = append(d.pending, m)
		} else {
			d.state, d.pending = catchUpNext, nil
		}
	case live:
		if !inView {
			d.state = catchUpNext
			return offerStartPass
		}
		if d.takeLocked(m) {
			return offerDeliver
		}
	}
	return offerKept
}

// groupsChanged restarts a pass in progress with the client's new groups.
func (d *delivery) groupsChanged() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state == catchUp || d.state == catchUpNext {
		d.state, d.pending = catchUpAll, nil
	}
}

// passEnd is called when a pass has read to the end of the stream. It
// returns live messages to deliver first (call it again after them), and
// whether the session is now live; otherwise another pass must run, from
// from().
func (d *delivery) passEnd() (batch []message, isLive bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.state {
	case catchUpAll:
		d.state, d.next = catchUp, d.cursor+1
		return nil, false
	case catchUpNext:
		d.state = catchUp
		return nil, false
	case catchUp:
		if len(d.pending) == 0 {
			d.state = live
			return nil, true
		}
		batch, d.pending = d.pending, nil
		return batch, false
	}
	return nil, d.state == live // closed: the pass stops
}

// take decides whether m comes next in stream order and, if so, advances
// next past it.
func (d *delivery) take(m message) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.takeLocked(m)
}

func (d *delivery) takeLocked(m message) bool {
	if m.seq < d.next || d.state == closed {
		return false
	}
	d.next = m.seq + 1
	return true
}

// restart sends the machine back to a pass from its cursor; true: it was
// live, and the caller starts the pass.
func (d *delivery) restart() (startPass bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.state {
	case live:
		d.state, d.next = catchUp, d.cursor+1
		return true
	case catchUp, catchUpNext:
		d.state, d.pending = catchUpAll, nil
	}
	return false
}

// rewind lowers the cursor below from, where a message may have been
// lost on the live feed after later ones of the shard were acknowledged,
// then restarts the machine as restart does: the next pass reads from
// there (the client drops, by its counters, what it had already).
func (d *delivery) rewind(from uint64) (startPass bool) {
	d.mu.Lock()
	if from > 0 && d.cursor >= from {
		d.cursor = from - 1
	}
	d.mu.Unlock()
	return d.restart()
}

// acked records that the client acknowledged every delivery of the
// shard up to stream sequence seq.
func (d *delivery) acked(seq uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cursor = max(d.cursor, seq)
}

// acknowledged is the shard's cursor: every delivery up to it was
// acknowledged.
func (d *delivery) acknowledged() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cursor
}

// close ends the delivery.
func (d *delivery) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.state, d.pending = closed, nil
}
