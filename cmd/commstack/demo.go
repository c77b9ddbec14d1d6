package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/commsec/communicator/clientsdk"
	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/stack"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
)

// The demo's cast and timing.
var demoNames = []string{"alice", "bob", "carol"}

const (
	demoGroup   = "ops"
	stepTimeout = 15 * time.Second // bounds each send, receive and wait
	quietWatch  = time.Second      // how long a client that must get nothing is watched
)

// demoConfig is `commstack demo`'s command line.
type demoConfig struct {
	data string // "" for a temporary directory, removed afterwards
	log  zerolog.Logger
}

// demo is one run: the stack, the clients, and the tally of checks.
type demo struct {
	out    io.Writer
	s      *stack.Stack
	group  protocol.GroupID
	users  map[string]*user
	passed int
	failed []string
	tally  map[protocol.Epoch]*epochTally
	carol  removedTally // what carol got and did after her removal
}

// removedTally is what the removed member got and did.
type removedTally struct {
	received int            // messages delivered to her
	sendsOut int            // messages of hers the relay accepted
	newest   protocol.Epoch // the newest epoch she holds a key for
}

type user struct {
	name string
	id   *keys.ClientIdentity
	c    *clientsdk.Client
}

type epochTally struct{ sent, received int }

// runDemo starts the stack on a data directory, plays the scenario and
// prints each step; it fails if any expectation does not hold.
func runDemo(ctx context.Context, cfg demoConfig, out io.Writer) error {
	dir, cleanup, err := demoDir(cfg.data)
	if err != nil {
		return err
	}
	defer cleanup()
	s, err := stack.Start(ctx, stack.Config{DataDir: dir, Gateway: "127.0.0.1:0", HTTP: "127.0.0.1:0", Log: cfg.log})
	if err != nil {
		return err
	}
	defer s.Close()
	d := &demo{out: out, s: s, users: map[string]*user{}, tally: map[protocol.Epoch]*epochTally{}}
	defer d.closeClients()
	if err := d.checkFresh(dir); err != nil {
		return err
	}
	d.intro(dir, cfg.data == "")
	for _, step := range []func(context.Context) error{d.register, d.createGroup, d.connect, d.epochOne, d.removeCarol, d.epochTwo} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return d.summary(cfg.data)
}

// demoDir is the data directory: the one given, or a fresh temporary one.
func demoDir(data string) (string, func(), error) {
	if data != "" {
		return data, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "commstack-demo-")
	if err != nil {
		return "", nil, fmt.Errorf("temporary data directory: %w", err)
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// checkFresh refuses a data directory that already has the demo's names:
// the demo's identities are made anew each time.
func (d *demo) checkFresh(dir string) error {
	var taken string
	d.s.Keyserver().Projection().Read(func(st *fold.State) {
		for _, n := range demoNames {
			if _, ok := st.ClientByName(n); ok && taken == "" {
				taken = "client " + n
			}
		}
		if _, ok := st.GroupByName(demoGroup); ok && taken == "" {
			taken = "group " + demoGroup
		}
	})
	if taken != "" {
		return fmt.Errorf("%s already has a %s; the demo needs a data directory without alice, bob, carol and ops (omit --data for a fresh one)", dir, taken)
	}
	return nil
}

func (d *demo) say(format string, a ...any) { fmt.Fprintf(d.out, format+"\n", a...) }

// check records an expectation and prints its outcome.
func (d *demo) check(ok bool, format string, a ...any) {
	line := fmt.Sprintf(format, a...)
	if ok {
		d.passed++
		d.say("   %s", line)
		return
	}
	d.failed = append(d.failed, line)
	d.say("   FAILED: %s", line)
}

func (d *demo) intro(dir string, temporary bool) {
	keys := d.s.Keys()
	where := dir
	if temporary {
		where += " (temporary, removed at the end)"
	}
	d.say("Communicator demo: keyserver, relay and gateway in this process, on an embedded NATS JetStream")
	d.say("  data       %s", where)
	d.say("  gateway    %s (TCP), server key Pk_S %s…", d.s.GatewayAddr(), short(keys.Gateway.Public()))
	d.say("  keyserver  key Pk_Ks %s…: every change is a signed, hash-chained event", short(keys.Keyserver.Public()))
	d.say("")
}

func short(k [32]byte) string { return hex.EncodeToString(k[:6]) }

func (d *demo) register(ctx context.Context) error {
	d.say("1. Register alice, bob and carol (identities made here; the keyserver gets their public keys)")
	for _, name := range demoNames {
		id, err := keys.GenerateClientIdentity(nil)
		if err != nil {
			return err
		}
		if err := d.s.Keyserver().RegisterClient(ctx, keyserver.Actor{}, id.Public(), name); err != nil {
			return fmt.Errorf("registering %s: %w", name, err)
		}
		d.users[name] = &user{name: name, id: id}
		d.say("   %-5s  client id %s…", name, id.ID().Short())
	}
	return nil
}

func (d *demo) createGroup(ctx context.Context) error {
	ks := d.s.Keyserver()
	g, err := ks.CreateGroup(ctx, keyserver.Actor{}, demoGroup, record.Policy{})
	if err != nil {
		return fmt.Errorf("creating %s: %w", demoGroup, err)
	}
	d.group = g
	e, err := ks.AddMembers(ctx, keyserver.Actor{}, demoGroup, demoNames)
	if err != nil {
		return fmt.Errorf("adding the members: %w", err)
	}
	d.say("2. Create group %s (id %s…) and add alice, bob and carol: epoch %d", demoGroup, g.String()[:12], e)
	d.say("   the keyserver wrapped a fresh group key to each member with HPKE and signed each bundle")
	if err := d.sync(ctx); err != nil {
		return err
	}
	members := d.members()
	d.check(members == "alice, bob, carol", "members of epoch %d in the event log: %s", e, members)
	return nil
}

func (d *demo) sync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	return d.s.Sync(ctx)
}

func (d *demo) connect(ctx context.Context) error {
	d.say("3. Connect the three clients to the gateway over TCP (handshake M1..M4, Pk_S pinned)")
	for _, name := range demoNames {
		u := d.users[name]
		c, err := d.dial(ctx, u)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		u.c = c
		wctx, cancel := context.WithTimeout(ctx, stepTimeout)
		err = c.WaitKey(wctx, d.group)
		cancel()
		if err != nil {
			return fmt.Errorf("%s got no key for %s: %w", name, demoGroup, err)
		}
		d.say("   %-5s  connected; verified and installed its bundle: holds the key of epoch %d", name, c.Epoch(d.group))
	}
	return nil
}

func (d *demo) dial(ctx context.Context, u *user) (*clientsdk.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	k := d.s.Keys()
	return clientsdk.Dial(ctx, clientsdk.Config{Addr: d.s.GatewayAddr(), Identity: u.id,
		ServerKey: k.Gateway.Public(), KeyserverKey: k.Keyserver.Public()})
}

func (d *demo) closeClients() {
	for _, u := range d.users {
		if u.c != nil {
			u.c.Close()
		}
	}
}
