package gateway

import (
	"errors"
	"net"
	"time"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/handshake"
)

// acceptLoop accepts connections; a connection beyond MaxHandshakes
// concurrent handshakes is told "busy" and closed at once.
func (g *Gateway) acceptLoop() {
	defer g.wg.Done()
	for {
		nc, err := g.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			g.log.Warn().Err(err).Msg("accept failed")
			time.Sleep(50 * time.Millisecond)
			continue
		}
		select {
		case g.handshakes <- struct{}{}:
			g.wg.Add(1)
			go g.serve(nc)
		default:
			g.Metrics.refuse("busy")
			handshake.RefuseM1(nc, protocol.CodeBusy)
			nc.Close()
		}
	}
}

// serve runs the handshake of one connection, then starts its session.
func (g *Gateway) serve(nc net.Conn) {
	defer g.wg.Done()
	start := time.Now()
	conn, id, err := handshake.Server(nc, handshake.ServerConfig{
		Identity: g.cfg.Key, Timeout: g.cfg.HandshakeTimeout, Admit: g.admit,
	})
	<-g.handshakes
	if err != nil {
		g.Metrics.refuse(protocol.Reason(err))
		g.log.Info().Err(err).Str("remote", nc.RemoteAddr().String()).Str("client", id.Short()).Msg("handshake refused")
		return
	}
	g.Metrics.handshakeTime.Observe(time.Since(start).Seconds())
	g.Metrics.handshakes.Inc()
	newSession(g, conn, id).start()
}

// admit lets in a registered client that is not revoked.
func (g *Gateway) admit(id protocol.ClientID) error {
	var err error
	g.proj.Read(func(s *events.State) {
		c := s.Clients[id]
		switch {
		case c == nil:
			err = events.ErrUnknownClient
		case c.Revoked:
			err = events.ErrClientRevoked
		}
	})
	return err
}
