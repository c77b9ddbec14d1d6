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
// starts again in first.
type outbox struct {
	s       *session
	mu      sync.Mutex
	room    sync.Cond // signalled when the queue shrinks or closes
	queue   []channel.Outgoing
	spare   []channel.Outgoing // a written batch's array, empty, for the next queue
	first   [2]channel.Outgoing
	writer  func() // o.write, made once: a go statement with a method value allocates
	writing bool   // a writer goroutine is running
	closed  bool
	idle    sync.WaitGroup // counts the running writer
}

// maxBatch bounds the bytes sealed into one write.
const maxBatch = 256 << 10

func (o *outbox) init(s *session) {
	o.s = s
	o.room.L = &o.mu
	o.queue = o.first[:0]
	o.writer = o.write
}

// enqueue queues a frame without waiting: a client whose queue is full is
// too slow and is disconnected (it catches up from its cursor later).
func (s *session) enqueue(f channel.Outgoing) bool {
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
	o.push(f)
	o.mu.Unlock()
	return true
}

// enqueueWait queues a frame, waiting for room: catch-up traffic that the
// client asked for by connecting.
func (s *session) enqueueWait(f channel.Outgoing) bool {
	o := &s.out
	o.mu.Lock()
	defer o.mu.Unlock()
	for len(o.queue) >= s.gw.cfg.QueueSize && !o.closed {
		o.room.Wait()
	}
	if o.closed {
		return false
	}
	o.push(f)
	return true
}

// push appends f and starts the writer if none runs; o.mu is held.
func (o *outbox) push(f channel.Outgoing) {
	o.queue = append(o.queue, f)
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
	for {
		if batch = o.take(batch); batch == nil {
			return
		}
		o.s.conn.NetConn().SetWriteDeadline(time.Now().Add(o.s.gw.cfg.WriteTimeout))
		if err := o.s.conn.WriteFrames(batch); err != nil {
			o.failed(err)
			return
		}
		o.s.gw.Metrics.framesOut.Add(uint64(len(batch)))
	}
}

// take removes the next batch from the queue, or returns nil (and marks
// the writer stopped) when there is nothing to write. written is the
// batch the writer has just written (nil at first); its array becomes
// the spare.
func (o *outbox) take(written []channel.Outgoing) []channel.Outgoing {
	o.mu.Lock()
	defer o.mu.Unlock()
	if written != nil {
		clear(written) // drop the references to the frames' bodies
		o.spare = written[:0]
	}
	if len(o.queue) == 0 || o.closed {
		o.writing = false
		if !o.closed {
			o.queue, o.spare = o.first[:0], nil
		}
		return nil
	}
	n, size := 0, 0
	for n < len(o.queue) && (n == 0 || size+len(o.queue[n].Body) <= maxBatch) {
		size += len(o.queue[n].Body)
		n++
	}
	batch := o.queue[:n:n]
	if o.queue = o.queue[n:]; len(o.queue) == 0 {
		o.queue, o.spare = o.spare, nil // batch and queue never share an array
	}
	o.room.Broadcast()
	return batch
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
	o.room.Broadcast()
}

// wait waits until no writer runs.
func (o *outbox) wait() { o.idle.Wait() }
