package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/commsec/communicator/clientsdk"
	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/internal/metrics"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
)

func (d *demo) epochOne(ctx context.Context) error {
	d.say("4. Messages in epoch 1")
	d.exchange(ctx, "alice", "meet at the north gate at 0600", 1, "bob", "carol")
	d.exchange(ctx, "carol", "copy, on my way", 1, "alice", "bob")
	return ctx.Err()
}

func (d *demo) removeCarol(ctx context.Context) error {
	e, err := d.s.Keyserver().RemoveMembers(ctx, keyserver.Actor{}, demoGroup, []string{"carol"}, "left the team")
	if err != nil {
		return fmt.Errorf("removing carol: %w", err)
	}
	d.say("5. Remove carol from %s (reason \"left the team\"): the keyserver opens epoch %d with a fresh key,", demoGroup, e)
	d.say("   wrapped to the remaining members only")
	if err := d.sync(ctx); err != nil {
		return err
	}
	members := d.members()
	d.check(members == "alice, bob", "members of epoch %d in the event log: %s", e, members)
	for _, name := range []string{"alice", "bob"} {
		got := d.waitEpoch(ctx, d.users[name], e)
		d.check(got >= e, "%-5s  received, verified and installed the key of epoch %d", name, e)
	}
	d.checkNoKey(e)
	return ctx.Err()
}

func (d *demo) epochTwo(ctx context.Context) error {
	d.say("6. Messages in epoch 2, carol removed")
	d.exchange(ctx, "alice", "new rally point: the east bridge", 2, "bob")
	d.expectNothing("carol")
	d.refusedSend(ctx, "carol", "am I still in?")
	d.exchange(ctx, "bob", "copy, east bridge at 0700", 2, "alice")
	d.expectNothing("carol")
	d.checkNoKey(2)
	return ctx.Err()
}

// exchange sends text from one client and checks that each of to
// receives it, in the expected epoch.
func (d *demo) exchange(ctx context.Context, from, text string, epoch protocol.Epoch, to ...string) {
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	err := d.users[from].c.Send(sctx, d.group, []byte(text))
	cancel()
	if err != nil {
		d.check(false, "%-5s -> %s  %q: not accepted: %v", from, demoGroup, text, err)
		return
	}
	d.check(true, "%-5s -> %s  %q: accepted by the relay", from, demoGroup, text)
	d.count(epoch).sent++
	for _, name := range to {
		d.expectMessage(name, from, text, epoch)
	}
}

func (d *demo) count(e protocol.Epoch) *epochTally {
	if d.tally[e] == nil {
		d.tally[e] = &epochTally{}
	}
	return d.tally[e]
}

// expectMessage waits for the next message of a client and checks its
// sender, text and epoch.
func (d *demo) expectMessage(name, from, text string, epoch protocol.Epoch) {
	m, ok := receive(d.users[name].c, stepTimeout)
	if !ok {
		d.check(false, "%-5s received nothing within %v", name, stepTimeout)
		return
	}
	sender := d.nameOf(m.Sender)
	good := sender == from && string(m.Payload) == text && m.Epoch == epoch
	d.check(good, "  %-5s received from %s %q (epoch %d, counter %d)", name, sender, m.Payload, m.Epoch, m.Counter)
	if good {
		d.count(epoch).received++
	}
}

// expectNothing watches a client for quietWatch: it must receive nothing.
func (d *demo) expectNothing(name string) {
	m, ok := receive(d.users[name].c, quietWatch)
	if ok {
		d.carol.received++
		d.check(false, "  %-5s received %q (epoch %d) from %s after being removed", name, m.Payload, m.Epoch, d.nameOf(m.Sender))
		return
	}
	d.check(true, "  %-5s received nothing (watched for %v)", name, quietWatch)
}

func receive(c *clientsdk.Client, within time.Duration) (clientsdk.Message, bool) {
	t := time.NewTimer(within)
	defer t.Stop()
	select {
	case m, ok := <-c.Messages():
		return m, ok
	case <-t.C:
		return clientsdk.Message{}, false
	}
}

// refusedSend checks that a removed member cannot send: her client knows
// it from the gateway and sends nothing, the relay refuses her message,
// or she has no key to seal it with.
func (d *demo) refusedSend(ctx context.Context, name, text string) {
	before := d.s.Relay().Metrics.Verdicts()["refused/not_member"]
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	err := d.users[name].c.Send(sctx, d.group, []byte(text))
	cancel()
	switch {
	case errors.Is(err, clientsdk.ErrNotMember) && d.s.Relay().Metrics.Verdicts()["refused/not_member"] == before:
		d.check(true, "%-5s -> %s  %q: REFUSED by her own client: the gateway told it she is no longer a member", name, demoGroup, text)
	case errors.Is(err, clientsdk.ErrRefused):
		reason := "not_member"
		if d.s.Relay().Metrics.Verdicts()["refused/not_member"] == before {
			reason = "another reason"
		}
		d.check(true, "%-5s -> %s  %q: sealed under her epoch %d key, REFUSED by the relay (%s)", name, demoGroup, text,
			d.users[name].c.Epoch(d.group), reason)
	case errors.Is(err, clientsdk.ErrNoKey):
		d.check(true, "%-5s -> %s  %q: not sent, she holds no key for the group", name, demoGroup, text)
	default:
		if err == nil {
			d.carol.sendsOut++
		}
		d.check(false, "%-5s -> %s  %q: not refused (err: %v)", name, demoGroup, text, err)
	}
}

// checkNoKey checks that carol holds no key for epoch e.
func (d *demo) checkNoKey(e protocol.Epoch) {
	got := d.users["carol"].c.Epoch(d.group)
	d.carol.newest = got
	d.check(got < e, "carol  holds no key for epoch %d (her newest: epoch %d)", e, got)
}

// waitEpoch polls until u holds the key of epoch e, or stepTimeout
// passes; it returns the newest epoch u holds.
func (d *demo) waitEpoch(ctx context.Context, u *user, e protocol.Epoch) protocol.Epoch {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if got := u.c.Epoch(d.group); got >= e {
			return got
		}
		select {
		case <-ctx.Done():
			return u.c.Epoch(d.group)
		case <-tick.C:
		}
	}
}

// members lists the current members of the group, by the keyserver's
// projection of the event log.
func (d *demo) members() string {
	var in []string
	d.s.Keyserver().Projection().Read(func(st *fold.State) {
		g := st.Groups[d.group]
		for _, name := range demoNames {
			if g != nil && g.IsMember(d.users[name].id.ID()) {
				in = append(in, name)
			}
		}
	})
	return strings.Join(in, ", ")
}

func (d *demo) nameOf(id protocol.ClientID) string {
	for _, u := range d.users {
		if u.id.ID() == id {
			return u.name
		}
	}
	return id.Short()
}

// summary prints the outcome and the relay's verdicts from the metrics,
// and fails if any check did.
func (d *demo) summary(data string) error {
	one, two := d.count(1), d.count(2)
	d.say("")
	d.say("Summary")
	d.say("  epoch 1  alice, bob, carol  %d messages sent, %d received by the other members", one.sent, one.received)
	d.say("  epoch 2  alice, bob         %d messages sent, %d received", two.sent, two.received)
	d.say("  carol after her removal     %d messages received, %d sent; her newest key is epoch %d's",
		d.carol.received, d.carol.sendsOut, d.carol.newest)
	d.say("  relay verdicts (from /metrics):")
	for _, line := range d.metricLines("comm_relay_verdicts_total{") {
		d.say("    %s", line)
	}
	if data != "" {
		d.say("  the event log stays in %s: run 'commstack --data %s', then", data, data)
		d.say("  'ksctl audit %s --nats-creds %s/creds/auditor.nk --keyserver-pub %s/keys/keyserver.pub' to audit it", demoGroup, data, data)
	}
	if len(d.failed) > 0 {
		d.say("  %d of %d checks FAILED", len(d.failed), len(d.failed)+d.passed)
		return fmt.Errorf("%d checks failed, the first: %s", len(d.failed), d.failed[0])
	}
	d.say("  all %d checks passed", d.passed)
	return nil
}

func (d *demo) metricLines(prefix string) []string {
	text, err := metrics.Text(d.s.Metrics())
	if err != nil {
		return []string{"cannot read the metrics: " + err.Error()}
	}
	var out []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			out = append(out, sc.Text())
		}
	}
	return out
}
