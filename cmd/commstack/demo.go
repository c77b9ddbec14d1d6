package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/clientstate"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/protocol/handshake"
	"github.com/commsec/communicator/protocol/keys"
)

// demoClient is one client (identity, state, its end of the channel) and
// the gateway's end of the same channel.
type demoClient struct {
	name  string
	id    *keys.ClientIdentity
	state *clientstate.State
	conn  *channel.Conn // client side
	gw    *channel.Conn // gateway side
}

func runDemo(out io.Writer) error {
	say := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }
	ks, gw, err := twoKeys()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	gwPub := gw.Public()
	say("gateway listening on %s, Pk_S %x…", ln.Addr(), gwPub[:6])
	accepted := acceptAll(ln, gw)

	var clients []*demoClient
	for _, name := range []string{"alice", "bob", "carol"} {
		c, err := dial(name, ln.Addr().String(), gwPub)
		if err != nil {
			return err
		}
		c.gw = <-accepted
		defer c.conn.Close()
		defer c.gw.Close()
		clients = append(clients, c)
		say("%-5s handshake done (M1..M4, keys confirmed by the Ready frame), id %s…", name, c.id.ID().Short())
	}
	group := protocol.GroupID{0xd3, 0x70}
	if err := deliverKeys(ks, group, 1, clients); err != nil {
		return err
	}
	say("keyserver wrapped the epoch 1 key to each member with HPKE and signed each bundle; every client verified and installed its own")
	env, err := send(clients[0], group, "meet at the north gate at 0600")
	if err != nil {
		return err
	}
	say("alice sent an envelope of %d bytes (clear metadata, XChaCha20-Poly1305 payload)", len(env))
	for _, c := range clients[1:] {
		text, err := deliver(c, env)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		say("%-5s got from alice: %q", c.name, text)
	}
	if _, err := deliver(clients[1], env); !errors.Is(err, protocol.ErrReplayedMessage) {
		return fmt.Errorf("a replayed message was not refused: %v", err)
	} else {
		say("bob   refused the same envelope delivered again: %v", err)
	}
	say("demo done")
	return nil
}

func twoKeys() (*keys.SigningKey, *keys.SigningKey, error) {
	a, err := keys.GenerateSigningKey(nil)
	if err != nil {
		return nil, nil, err
	}
	b, err := keys.GenerateSigningKey(nil)
	return a, b, err
}

// acceptAll runs the server side of each incoming handshake.
func acceptAll(ln net.Listener, gw *keys.SigningKey) <-chan *channel.Conn {
	out := make(chan *channel.Conn)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			conn, _, err := handshake.Server(nc, handshake.ServerConfig{Identity: gw})
			if err == nil {
				out <- conn
			}
		}
	}()
	return out
}

func dial(name, addr string, server [32]byte) (*demoClient, error) {
	id, err := keys.GenerateClientIdentity(nil)
	if err != nil {
		return nil, err
	}
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	conn, err := handshake.Client(nc, handshake.ClientConfig{Identity: id.Sig, ServerKey: server})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	state, err := clientstate.Load(&clientstate.MemStore{}, clientstate.Options{})
	if err != nil {
		return nil, err
	}
	return &demoClient{name: name, id: id, state: state, conn: conn}, nil
}

// deliverKeys plays the keyserver and the gateway: a fresh group key is
// wrapped to every member and pushed over its channel as a KeyBundle frame.
func deliverKeys(ks *keys.SigningKey, g protocol.GroupID, e protocol.Epoch, members []*demoClient) error {
	var groupKey [32]byte
	defer clear(groupKey[:])
	if _, err := rand.Read(groupKey[:]); err != nil {
		return err
	}
	ids := make([]protocol.ClientID, len(members))
	for i, m := range members {
		ids[i] = m.id.ID()
	}
	digest := bundle.MemberDigest(ids)
	for _, m := range members {
		b, err := bundle.Wrap(ks, g, e, bundle.Recipient{ID: m.id.ID(), Wrap: m.id.Wrap.Public()}, &digest, &groupKey)
		if err != nil {
			return err
		}
		if err := m.gw.WriteFrame(channel.TypeKeyBundle, b.Marshal()); err != nil {
			return err
		}
		if err := m.install(ks.Public()); err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
	}
	return nil
}

// install reads a KeyBundle frame, verifies it and installs the key.
func (c *demoClient) install(ksPub [32]byte) error {
	f, err := c.conn.ReadFrame()
	if err != nil {
		return err
	}
	b, err := bundle.Parse(f.Body)
	if err != nil {
		return err
	}
	key, err := b.Open(&ksPub, c.id)
	if err != nil {
		return err
	}
	defer clear(key[:])
	return c.state.InstallKey(b.Group, b.Epoch, &key)
}

// send seals text for g and writes it as a Send frame; the gateway reads it.
func send(c *demoClient, g protocol.GroupID, text string) ([]byte, error) {
	epoch, key, err := c.state.Current(g)
	if err != nil {
		return nil, err
	}
	defer clear(key[:])
	counter, err := c.state.NextCounter(g)
	if err != nil {
		return nil, err
	}
	h := envelope.Header{Group: g, Epoch: epoch, Sender: c.id.ID(), Counter: counter}
	env, err := envelope.Seal(nil, h, &key, []byte(text), nil)
	if err != nil {
		return nil, err
	}
	if err := c.conn.WriteFrame(channel.TypeSend, env); err != nil {
		return nil, err
	}
	f, err := c.gw.ReadFrame()
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), f.Body...), nil
}

// deliver pushes env to c as a Deliver frame; c opens it and applies the
// client's acceptance rules.
func deliver(c *demoClient, env []byte) (string, error) {
	if err := c.gw.WriteFrame(channel.TypeDeliver, channel.AppendDeliver(nil, 1, env)); err != nil {
		return "", err
	}
	f, err := c.conn.ReadFrame()
	if err != nil {
		return "", err
	}
	_, body, err := channel.ParseDeliver(f.Body)
	if err != nil {
		return "", err
	}
	h, err := envelope.ParseHeader(body)
	if err != nil {
		return "", err
	}
	key, err := c.state.Key(h.Group, h.Epoch)
	if err != nil {
		return "", err
	}
	defer clear(key[:])
	_, payload, err := envelope.Open(nil, body, &key)
	if err != nil {
		return "", err
	}
	if err := c.state.Accept(h); err != nil {
		return "", err
	}
	return string(payload), nil
}
