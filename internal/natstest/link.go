package natstest

import (
	"io"
	"net"
	"sync"
	"time"
)

// link is a TCP proxy for the routes one node dials to another: the
// dialing node's route URL is the link's address, and the link forwards
// each connection to the other node's route listener, learnt once that
// node has started (setTarget). cut closes every connection and refuses
// new ones, so the two nodes lose each other while their clients'
// connections stay up.
type link struct {
	ln     net.Listener
	known  chan struct{} // closed by setTarget
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
	closed chan struct{}
	wg     sync.WaitGroup // the accept loop and every connection's pipe
}

func newLink() (*link, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &link{ln: ln, known: make(chan struct{}), conns: map[net.Conn]struct{}{}, closed: make(chan struct{})}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

func (l *link) addr() string { return l.ln.Addr().String() }

// setTarget names the route listener the link forwards to; once only.
func (l *link) setTarget(addr string) {
	l.target = addr
	close(l.known)
}

func (l *link) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.wg.Add(1)
		go l.serve(c)
	}
}

// serve waits for the target, dials it and pipes both ways until either
// side closes or the link is cut.
func (l *link) serve(c net.Conn) {
	defer l.wg.Done()
	select {
	case <-l.known:
	case <-l.closed:
		c.Close()
		return
	}
	up, err := net.DialTimeout("tcp", l.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	if !l.track(c, up) {
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(up, c)
		up.Close()
		c.Close()
	}()
	io.Copy(c, up)
	c.Close()
	up.Close()
	wg.Wait()
	l.untrack(c, up)
}

// track registers a pair of connections, or closes them if the link is
// cut or closed.
func (l *link) track(cs ...net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		l.conns[c] = struct{}{}
	}
	return true
}

func (l *link) untrack(cs ...net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range cs {
		delete(l.conns, c)
	}
}

// setCut cuts the link (closing its connections) or mends it.
func (l *link) setCut(cut bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = cut
	if cut {
		for c := range l.conns {
			c.Close()
		}
	}
}

// close stops the link and waits for its goroutines.
func (l *link) close() {
	close(l.closed)
	l.ln.Close()
	l.setCut(true)
	l.wg.Wait()
}
