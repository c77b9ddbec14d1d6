package gateway

import (
	"errors"
	"net"
	"time"

	"github.com/rs/zerolog"

	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/handshake"
)

// acceptLoop accepts connections and admits each to a handshake by the
// admission policy (MaxHandshakes, MaxHandshakesPerSource). A connection
// turned away costs no goroutine: it is told "busy" and closed here.
func (g *Gateway) acceptLoop() {
	defer g.wg.Done()
	adm := newAdmission[net.Conn](g.cfg.MaxHandshakes, g.cfg.MaxHandshakesPerSource)
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
		d := adm.admit(sourceOf(nc.RemoteAddr()), nc)
		if d.evicted {
			g.evict(d.victim, d.victimStage)
		}
		if d.refused != nil {
			g.turnAway(nc, d.refused)
			continue
		}
		g.wg.Add(1)
		go g.serve(nc, adm, d.ticket)
	}
}

// turnAway tells a connection "busy" (best effort, briefly) and closes it.
func (g *Gateway) turnAway(nc net.Conn, why *protocol.Error) {
	g.refused(nc, protocol.ClientID{}, why)
	handshake.RefuseM1(nc, protocol.CodeBusy)
	nc.Close()
}

// evict ends a handshake to make room. One still waiting for M1 is told
// "busy" in place of M2; one past M1 has been sent M2 or is about to be,
// so it is just closed. Its goroutine finds its ticket stale and stops.
func (g *Gateway) evict(nc net.Conn, st stage) {
	if st == waitingM1 {
		g.turnAway(nc, protocol.ErrEvicted)
		return
	}
	g.refused(nc, protocol.ClientID{}, protocol.ErrEvicted)
	nc.Close()
}

// serve runs the handshake of one connection, then starts its session.
func (g *Gateway) serve(nc net.Conn, adm *admission[net.Conn], t ticket) {
	defer g.wg.Done()
	start := time.Now()
	conn, id, err := handshake.Server(nc, handshake.ServerConfig{
		Identity: g.cfg.Key, Timeout: g.cfg.HandshakeTimeout, M1Timeout: g.cfg.M1Timeout, Admit: g.admit,
		GotM1: func() error {
			if !adm.gotM1(t) {
				return protocol.ErrEvicted
			}
			return nil
		},
	})
	if !adm.done(t) {
		// Evicted, and counted then; if the handshake ended at that very
		// moment, its connection is closed all the same.
		if conn != nil {
			conn.Close()
		}
		return
	}
	if err != nil {
		g.refused(nc, id, err)
		return
	}
	g.Metrics.handshakeTime.Observe(time.Since(start).Seconds())
	g.Metrics.handshakes.Inc()
	newSession(g, conn, id).start()
}

// refused counts a refused or failed handshake by its reason and logs it.
// What a peer causes by only connecting (turned away, evicted, no whole
// M1) is logged at debug level, so that a flood cannot flood the log.
func (g *Gateway) refused(nc net.Conn, id protocol.ClientID, err error) {
	reason := protocol.Reason(err)
	g.Metrics.refuse(reason)
	level := zerolog.InfoLevel
	switch reason {
	case protocol.ErrBusy.Name, protocol.ErrBusySource.Name, protocol.ErrEvicted.Name, protocol.ErrM1Timeout.Name,
		protocol.ErrTruncatedMessage.Name, protocol.ErrClosedInHandshake.Name:
		level = zerolog.DebugLevel
	}
	if e := g.log.WithLevel(level); e.Enabled() {
		e.Err(err).Str("reason", reason).Str("remote", nc.RemoteAddr().String()).Str("client", id.Short()).
			Msg("handshake refused")
	}
}

// admit lets in a registered client that is not revoked.
func (g *Gateway) admit(id protocol.ClientID) error {
	var err error
	g.proj.Read(func(s *fold.State) {
		c := s.Clients[id]
		switch {
		case c == nil:
			err = fold.ErrUnknownClient
		case c.Revoked:
			err = fold.ErrClientRevoked
		}
	})
	return err
}
