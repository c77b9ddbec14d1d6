// Package flood presses on a gateway with connections that never finish
// M1 (docs/PROTOCOL.md, 4.9). The gateway's fairness test and commbench's
// flood figure both drive it, so that the test and the benchmark flood
// the same way.
//
// The flood dials from 127.0.0.1 up to 127.0.0.<sources>: Linux accepts
// any 127/8 source address on loopback.
package flood

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/protocol/handshake"
)

// Redial is how long, on average, a flood connection the gateway closed
// waits before it dials again: about 2,000 connections a second keep the
// gateway's table full without taking the machine's cores. Many more
// fill the kernel's connection tracking table (262,144 entries on the
// test machine, shared by every process on it), and then it drops SYNs
// for all of them.
const Redial = time.Second

// Flood keeps n connections to a gateway that never finish M1: every
// other one sends the first two bytes of a header, the others nothing.
// A connection the gateway closes dials again after Redial on average,
// until Stop.
type Flood struct {
	dialed atomic.Int64
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start starts a flood of n connections to addr from sources source
// addresses, 127.0.0.1 to 127.0.0.<sources>.
func Start(addr string, n, sources int) *Flood {
	ctx, cancel := context.WithCancel(context.Background())
	f := &Flood{cancel: cancel}
	for i := range n {
		src := netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i%sources)})
		f.wg.Go(func() { f.conn(ctx, addr, src, i%2 == 0) })
	}
	return f
}

// Dialed is how many connections the flood has made so far.
func (f *Flood) Dialed() int64 { return f.dialed.Load() }

// Stop closes the flood's connections and waits for its goroutines.
func (f *Flood) Stop() {
	f.cancel()
	f.wg.Wait()
}

func (f *Flood) conn(ctx context.Context, addr string, src netip.Addr, partial bool) {
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
	for ctx.Err() == nil {
		if nc, err := d.DialContext(ctx, "tcp", addr); err == nil {
			f.dialed.Add(1)
			if partial {
				nc.Write([]byte{1, handshake.TypeM1})
			}
			stop := context.AfterFunc(ctx, func() { nc.Close() })
			io.Copy(io.Discard, nc) // until the gateway closes it
			stop()
			// Reset, as an attacker would: no TIME_WAIT on either side,
			// and the kernel's connection tracking forgets it in 10 s,
			// not 120.
			nc.(*net.TCPConn).SetLinger(0)
			nc.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(Redial/2 + rand.N(Redial)): // spread, so that the table refills all the time
		}
	}
}

// TurnedAway counts the connections gw answered busy.
func TurnedAway(gw *gateway.Gateway) uint64 {
	refused, _, _ := gw.Metrics.Snapshot()
	return refused["busy"] + refused["busy_source"]
}
