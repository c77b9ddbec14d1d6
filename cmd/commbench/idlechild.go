package main

// The child side of the idle-connections figure: this binary run as
// "commbench idle-clients ...". It opens --count connections to the
// gateway, each from its own identity and a raw handshake (no SDK), and
// holds them idle, pinging each every 30 s as a device would, until its
// standard input closes. It reports on standard output, one line each:
//
//	progress CONNECTED FAILED
//	ready CONNECTED FAILED
//	error MESSAGE

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/handshake"
)

const childCommand = "idle-clients"

// Limits of a child.
const (
	childReserveFiles = 128              // descriptors kept for everything but the connections
	childAttempts     = 3                // per connection
	childDialTimeout  = 10 * time.Second // per attempt, dial and handshake
	childPingEvery    = 30 * time.Second // below the gateway's 90 s idle timeout
	childMaxRun       = time.Hour        // a child outliving its parent's run ends anyway
)

type childConfig struct {
	gateway        string
	serverKey      [32]byte
	seed           [32]byte
	from, count    int
	perAddr        int // connections per 127.0.0.x source address
	dialers        int
	firstAddrOctet int
}

func idleChildMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c, err := parseChildFlags(args, stderr)
	if err == nil {
		err = c.checkFiles()
	}
	if err != nil {
		fmt.Fprintf(stdout, "error %v\n", err)
		return 1
	}
	conns, failed := c.connectAll(stdout)
	fmt.Fprintf(stdout, "ready %d %d\n", len(conns), failed)
	stop := pingEvery(conns, childPingEvery)
	waitEOF(stdin, childMaxRun)
	stop()
	for _, conn := range conns {
		conn.Close()
	}
	return 0
}

func parseChildFlags(args []string, stderr io.Writer) (*childConfig, error) {
	c := &childConfig{}
	var serverKey, seed string
	fs := flag.NewFlagSet(childCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.gateway, "gateway", "", "gateway address")
	fs.StringVar(&serverKey, "server-key", "", "Pk_S, hex")
	fs.StringVar(&seed, "seed", "", "identity seed, hex")
	fs.IntVar(&c.from, "from", 0, "first client index")
	fs.IntVar(&c.count, "count", 0, "connections")
	fs.IntVar(&c.perAddr, "per-addr", 10_000, "connections per source address")
	fs.IntVar(&c.dialers, "dialers", 128, "concurrent dials")
	fs.IntVar(&c.firstAddrOctet, "first-addr", 2, "last octet of the first source address 127.0.0.x")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := hexKey(serverKey, &c.serverKey); err != nil {
		return nil, fmt.Errorf("--server-key: %w", err)
	}
	if err := hexKey(seed, &c.seed); err != nil {
		return nil, fmt.Errorf("--seed: %w", err)
	}
	if c.gateway == "" || c.count <= 0 || c.from < 0 || c.perAddr <= 0 || c.dialers <= 0 {
		return nil, errors.New("--gateway, a positive --count, --per-addr and --dialers are required")
	}
	return c, nil
}

func hexKey(s string, out *[32]byte) error {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return errors.New("want 64 hex digits")
	}
	copy(out[:], b)
	return nil
}

// checkFiles raises the limit on open files and refuses a count that
// does not fit under it.
func (c *childConfig) checkFiles() error {
	limit, err := raiseFileLimit()
	if err != nil {
		return err
	}
	if need := uint64(c.count + childReserveFiles); need > limit {
		return fmt.Errorf("%d connections need %d open files; the limit is %d", c.count, need, limit)
	}
	return nil
}

// source is the local address of client i: 127.0.0.x, a new x every
// perAddr clients, so that no address runs out of ephemeral ports.
func (c *childConfig) source(i int) *net.TCPAddr {
	octet := c.firstAddrOctet + i/c.perAddr
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(min(octet, 254)))}
}

// connectAll opens the connections on c.dialers goroutines, printing a
// progress line a second.
func (c *childConfig) connectAll(stdout io.Writer) ([]*channel.Conn, int) {
	conns := make([]*channel.Conn, c.count)
	var next, connected, failed atomic.Int64
	stop := progressLine(func(f string, a ...any) { fmt.Fprintf(stdout, f+"\n", a...) }, func() string {
		return fmt.Sprintf("progress %d %d", connected.Load(), failed.Load())
	})
	var wg sync.WaitGroup
	for range c.dialers {
		wg.Go(func() {
			for j := int(next.Add(1) - 1); j < c.count; j = int(next.Add(1) - 1) {
				if conns[j] = c.connect(c.from + j); conns[j] != nil {
					connected.Add(1)
				} else {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	stop()
	out := conns[:0]
	for _, conn := range conns {
		if conn != nil {
			out = append(out, conn)
		}
	}
	return out, int(failed.Load())
}

// connect dials and handshakes as client i, with a few attempts.
func (c *childConfig) connect(i int) *channel.Conn {
	cfg := handshake.ClientConfig{Identity: idleSigningKey(&c.seed, i), ServerKey: c.serverKey, Timeout: childDialTimeout}
	d := net.Dialer{LocalAddr: c.source(i), Timeout: childDialTimeout}
	for attempt := range childAttempts {
		nc, err := d.Dial("tcp", c.gateway)
		if err == nil {
			conn, err := handshake.Client(nc, cfg)
			if err == nil {
				return conn
			}
		}
		time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
	}
	return nil
}

// pingEvery sends each connection a Ping every interval, a slice of them
// every pingTick, until stop is called.
func pingEvery(conns []*channel.Conn, interval time.Duration) (stop func()) {
	const pingTick = 100 * time.Millisecond
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		batch := int((int64(len(conns))*int64(pingTick) + int64(interval) - 1) / int64(interval))
		t := time.NewTicker(pingTick)
		defer t.Stop()
		for i := 0; len(conns) > 0; {
			select {
			case <-done:
				return
			case <-t.C:
				for range batch {
					ping(conns[i])
					i = (i + 1) % len(conns)
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// ping sends a Ping frame; a connection the gateway closed fails silently.
func ping(conn *channel.Conn) {
	var body [channel.PingBodySize]byte
	conn.NetConn().SetWriteDeadline(time.Now().Add(time.Second))
	conn.WriteFrame(channel.TypePing, body[:])
}

// waitEOF reads r until it ends, or at most d.
func waitEOF(r io.Reader, d time.Duration) {
	eof := make(chan struct{})
	go func() {
		io.Copy(io.Discard, r)
		close(eof)
	}()
	select {
	case <-eof:
	case <-time.After(d):
	}
}
