package gateway

import (
	"sync"
	"time"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
)

// outbox is a session's bounded queue of frames and its writer. The
// writer goroutine runs only while there is something to write: an idle
// connection holds no writer and no queue memory beyond two slots. It
// writes everything queued at once (one system call for many frames),
// each batch within WriteTimeout.
//
// Queuing allocates nothing in the steady state: the writer hands each
// written batch's array back as the next queue (spare), so two arrays
// alternate while it runs; when it stops they are dropped and the queue
// starts again in first. stamps runs beside queue, sliced and handed
// back the same way, and says when each Deliver frame's message was
// stored: the writer observes the delivery lag once the frame is written.
type outbox struct {
	s           *session
	mu          sync.Mutex
	room        sync.Cond // signalled when the queue shrinks or closes
	queue       []channel.Outgoing
	stamps      []stamp            // one per frame of queue
	spare       []channel.Outgoing // a written batch's array, empty, for the next queue
	spareStamps []stamp
	first       [2]channel.Outgoing
	firstStamps [2]stamp
	writer      func() // o.write, made once: a go statement with a method value allocates
	writing     bool   // a writer goroutine is running
	closed      bool
	idle        sync.WaitGroup // counts the running writer
}

// stamp is what the writer needs of a queued frame for the delivery lag:
// for a Deliver frame, when its message was stored (Unix nanoseconds) and
// how it was queued; zero for every other frame.
type stamp struct {
	stored int64
	path   deliveryPath
}

// maxBatch bounds the bytes sealed into one write.
const maxBatch = 256 << 10

func (o *outbox) init(s *session) {
	o.s = s
	o.room.L = &o.mu
	o.queue, o.stamps = o.first[:0], o.firstStamps[:0]
	o.writer = o.write
}

// enqueue queues a frame without waiting: a client whose queue is full is
// too slow and is disconnected (it catches up from its cursor later).
func (s *session) enqueue(f channel.Outgoing) bool { return s.enqueueStamped(f, stamp{}) }

// enqueueStamped is enqueue with the frame's stamp.
func (s *session) enqueueStamped(f channel.Outgoing, st stamp) bool {
	o := &s.out
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return false
	}
	if len(o.queue) >= s.gw.cfg.QueueSize {
		o.mu.Unlock()
		s.fail("slow", protocol.ErrSlowClient)
		return false
	}
	o.push(f, st)
	o.mu.Unlock()
	return true
}

// enqueueWait queues a frame, waiting for room: catch-up traffic that the
// client asked for by connecting.
func (s *session) enqueueWait(f channel.Outgoing) bool { return s.enqueueWaitStamped(f, stamp{}) }

// enqueueWaitStamped is enqueueWait with the frame's stamp.
func (s *session) enqueueWaitStamped(f channel.Outgoing, st stamp) bool {
	o := &s.out
	o.mu.Lock()
	defer o.mu.Unlock()
	for len(o.queue) >= s.gw.cfg.QueueSize && !o.closed {
		o.room.Wait()
	}
	if o.closed {
		return false
	}
	o.push(f, st)
	return true
}

// push appends f and starts the writer if none runs; o.mu is held.
func (o *outbox) push(f channel.Outgoing, st stamp) {
	o.queue = append(o.queue, f)
	o.stamps = append(o.stamps, st)
	if !o.writing {
		o.writing = true
		o.idle.Add(1)
		go o.writer()
	}
}

// write writes batches until the queue is empty, then exits.
func (o *outbox) write() {
	defer o.idle.Done()
	var batch []channel.Outgoing
	var stamps []stamp
	for {
		if batch, stamps = o.take(batch, stamps); batch == nil {
			return
		}
		o.s.conn.NetConn().SetWriteDeadline(time.Now().Add(o.s.gw.cfg.WriteTimeout))
		if err := o.s.conn.WriteFrames(batch); err != nil {
			o.failed(err)
			return
		}
		o.written(len(batch), stamps)
	}
}

// written counts a batch written and observes its Deliver frames' lag.
func (o *outbox) written(n int, stamps []stamp) {
	m := o.s.gw.Metrics
	m.framesOut.Add(float64(n))
	var now time.Time
	for _, st := range stamps {
		if st.stored == 0 {
			continue
		}
		if now.IsZero() {
			now = time.Now()
		}
		m.delivered(st.path, st.stored, now)
	}
}

// take removes the next batch from the queue, with its stamps, or
// returns nil (and marks the writer stopped) when there is nothing to
// write. written and writtenStamps are what the writer has just written
// (nil at first); their arrays become the spares.
func (o *outbox) take(written []channel.Outgoing, writtenStamps []stamp) ([]channel.Outgoing, []stamp) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if written != nil {
		clear(written) // drop the references to the frames' bodies
		o.spare, o.spareStamps = written[:0], writtenStamps[:0]
	}
	if len(o.queue) == 0 || o.closed {
		o.writing = false
		if !o.closed {
			o.queue, o.spare = o.first[:0], nil
			o.stamps, o.spareStamps = o.firstStamps[:0], nil
		}
		return nil, nil
	}
	n, size := 0, 0
	for n < len(o.queue) && (n == 0 || size+len(o.queue[n].Body) <= maxBatch) {
		size += len(o.queue[n].Body)
		n++
	}
	batch, stamps := o.queue[:n:n], o.stamps[:n:n]
	o.queue, o.stamps = o.queue[n:], o.stamps[n:]
	if len(o.queue) == 0 { // batch and queue never share an array
		o.queue, o.spare = o.spare, nil
		o.stamps, o.spareStamps = o.spareStamps, nil
	}
	o.room.Broadcast()
	return batch, stamps
}

func (o *outbox) failed(err error) {
	o.mu.Lock()
	o.writing = false
	closed := o.closed
	o.mu.Unlock()
	if !closed { // closed meanwhile: not the write's fault
		o.s.fail("write_failed", err)
	}
}

// close drops what is queued and wakes the waiters.
func (o *outbox) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	o.queue, o.spare = nil, nil
	o.stamps, o.spareStamps = nil, nil
	o.room.Broadcast()
}

// wait waits until no writer runs.
func (o *outbox) wait() { o.idle.Wait() }
