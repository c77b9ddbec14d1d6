package jsprobe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// errStreamNotFound is JetStream's code for a stream that does not
// exist: JetStream answered, so it is reachable.
const errStreamNotFound = 10059

// once runs one probe and applies its outcome.
func (p *Probe) once() {
	if !p.nc.IsConnected() {
		p.apply(disconnected, nil)
		return
	}
	node := p.nc.ConnectedServerName()
	err := p.check(p.cfg.Timeout)
	if p.ctx.Err() != nil {
		return // closing: the probe was abandoned, not answered
	}
	p.mu.Lock()
	p.node = node
	p.mu.Unlock()
	if err != nil {
		p.fails.Inc()
		p.apply(failed, err)
		return
	}
	p.apply(answered, nil)
}

// check asks for the stream's info, waiting timeout, and judges the
// answer.
func (p *Probe) check(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	m, err := p.nc.RequestWithContext(ctx, p.subject(), nil)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %v", timeout)
	}
	if err != nil {
		return err
	}
	return judge(m.Data, p.cfg.Stale)
}

// subject is the JetStream API subject of the stream's info.
func (p *Probe) subject() string { return "$JS.API.STREAM.INFO." + p.cfg.Stream }

// streamInfo is the part of JetStream's STREAM.INFO answer the probe reads.
type streamInfo struct {
	Error *struct {
		Code        int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
	Cluster *struct {
		Leader   string `json:"leader"`
		Replicas []struct {
			Name    string        `json:"name"`
			Offline bool          `json:"offline"`
			Active  time.Duration `json:"active"` // since the leader last heard from it
			Pending bool          `json:"pending"`
		} `json:"replicas"`
	} `json:"cluster"`
}

// judge reads an answer: nil if it comes from a leader that has heard
// from a quorum of its group (itself included) within stale.
func judge(data []byte, stale time.Duration) error {
	var si streamInfo
	if err := json.Unmarshal(data, &si); err != nil {
		return fmt.Errorf("answer is not JSON: %w", err)
	}
	if si.Error != nil {
		if si.Error.Code == errStreamNotFound {
			return nil
		}
		return fmt.Errorf("JetStream: %s (%d)", si.Error.Description, si.Error.Code)
	}
	c := si.Cluster
	if c == nil {
		return nil
	}
	if c.Leader == "" {
		return errors.New("the stream has no leader")
	}
	group, heard := 1, 1 // the leader
	for _, r := range c.Replicas {
		if r.Pending {
			continue
		}
		group++
		if !r.Offline && r.Active <= stale {
			heard++
		}
	}
	if heard <= group/2 {
		return fmt.Errorf("stream leader %s has heard from %d of %d within %v", c.Leader, heard, group, stale)
	}
	return nil
}

// apply moves the state by one outcome, looks for another node and
// moves the connection there when the state says so, logs the changes
// and calls OnState.
func (p *Probe) apply(o outcome, err error) {
	p.mu.Lock()
	before := p.t.state
	look := p.t.step(o)
	switch o {
	case failed:
		if p.streak == 0 {
			p.grace = before == Reachable
		}
		p.streak, p.lastErr = p.streak+1, err
	case answered:
		p.streak, p.lastErr = 0, nil
	}
	streak, node := p.streak, p.node
	p.mu.Unlock()
	if look {
		p.move(node, streak, err)
	}
	after := p.State()
	p.logChange(before, after, node, streak, err)
	if after != before && p.cfg.OnState != nil {
		p.cfg.OnState(after)
	}
}

// move moves the connection off its node if JetStream answers through
// another and, asked once more, still not through this one (a leader
// elected while the last probe waited answers both): nats.go reconnects
// at once to the next server of its list.
func (p *Probe) move(node string, streak int, why error) {
	there := p.elsewhere()
	if there == "" {
		p.log.Warn().Str("node", node).Int("failures", streak).AnErr("last", why).
			Msg("JetStream unreachable through this NATS node, and through no other either; staying")
		return
	}
	if p.check(p.cfg.Timeout/2) == nil {
		p.log.Info().Str("node", node).Msg("JetStream answers through this NATS node again; staying")
		return
	}
	if err := p.nc.ForceReconnect(); err != nil {
		p.log.Warn().Err(err).Str("node", node).Msg("JetStream unreachable; moving to another NATS node failed")
		return
	}
	p.moves.Inc()
	p.log.Warn().Str("from", node).Str("answering", there).Int("failures", streak).AnErr("last", why).
		Msg("JetStream unreachable through this NATS node; moving to another")
	p.mu.Lock()
	p.t.moved()
	p.mu.Unlock()
}

func (p *Probe) logChange(before, after State, node string, streak int, err error) {
	switch {
	case after == Reachable && before != Reachable && before != Unknown:
		p.log.Info().Str("node", node).Msg("JetStream reachable again")
	case after == Failing && before != Failing:
		p.log.Warn().Str("node", node).Err(err).Msg("JetStream not answering through this NATS node")
	case err != nil:
		p.log.Debug().Str("node", node).Int("failures", streak).Err(err).Msg("JetStream probe failed")
	}
}
