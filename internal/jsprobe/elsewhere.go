package jsprobe

import (
	"context"
	"net/url"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// sideOptions are the connection's options for a short connection of the
// probe's own to one server: the same credentials and inbox prefix,
// without reconnection or callbacks. They are copied at Start.
func sideOptions(o nats.Options, timeout time.Duration) nats.Options {
	o.Name += " (jsprobe)"
	o.Timeout = timeout
	o.InProcessServer, o.Servers, o.NoRandomize, o.IgnoreDiscoveredServers = nil, nil, true, true
	o.AllowReconnect, o.RetryOnFailedConnect, o.MaxReconnect = false, false, 0
	o.Dialer = nil // a fresh one, with our timeout
	o.ClosedCB, o.DisconnectedCB, o.DisconnectedErrCB, o.ConnectedCB, o.ReconnectedCB = nil, nil, nil, nil, nil
	o.DiscoveredServersCB, o.AsyncErrorCB, o.ReconnectErrCB, o.ReconnectToServerCB, o.LameDuckModeHandler = nil, nil, nil, nil, nil
	return o
}

// elsewhere asks every other server of the connection's list at once,
// each on a connection of its own, for the stream's info, and returns
// the host of one through which JetStream answers, or "" if none does.
// It returns within twice Timeout (a connection, then a request).
func (p *Probe) elsewhere() string {
	current := p.nc.ConnectedUrl()
	ctx, cancel := context.WithTimeout(p.ctx, 2*p.cfg.Timeout)
	defer cancel()
	answering := make(chan string, len(p.nc.Servers()))
	var wg sync.WaitGroup
	for _, u := range p.nc.Servers() {
		if u == current {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if p.askVia(ctx, u) == nil {
				answering <- u
			}
		}()
	}
	wg.Wait()
	close(answering)
	for u := range answering {
		if pu, err := url.Parse(u); err == nil {
			return pu.Host // no user info in the logs
		}
		return "?"
	}
	return ""
}

// askVia asks for the stream's info through the server at u.
func (p *Probe) askVia(ctx context.Context, u string) error {
	o := p.side
	o.Url = u
	nc, err := o.Connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	m, err := nc.RequestWithContext(ctx, p.subject(), nil)
	if err != nil {
		return err
	}
	return judge(m.Data, p.cfg.Stale)
}
