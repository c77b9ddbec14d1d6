package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/commsec/communicator/clientsdk"
	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/internal/stack"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
)

// member is one client of the load: its identity, its group and, once
// connected, its SDK client.
type member struct {
	name      string
	id        *keys.ClientIdentity
	group     protocol.GroupID
	groupSize int
	client    *clientsdk.Client
}

// fleet is every client, client i in group i mod G.
type fleet struct {
	members []*member
	groups  []protocol.GroupID
}

// provision registers the clients and creates the groups.
func provision(ctx context.Context, s *stack.Stack, n, g int) (*fleet, error) {
	f := &fleet{members: make([]*member, n), groups: make([]protocol.GroupID, g)}
	regs := make([]keyserver.Registration, n)
	for i := range f.members {
		id, err := keys.GenerateClientIdentity(nil)
		if err != nil {
			return nil, err
		}
		f.members[i] = &member{name: fmt.Sprintf("c%05d", i), id: id}
		regs[i] = keyserver.Registration{Public: id.Public(), Name: f.members[i].name}
	}
	if err := s.Keyserver().RegisterClients(ctx, keyserver.Actor{}, regs); err != nil {
		return nil, fmt.Errorf("registering clients: %w", err)
	}
	for j := range f.groups {
		if err := f.makeGroup(ctx, s, j); err != nil {
			return nil, err
		}
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return f, s.Sync(sctx)
}

// makeGroup creates group j with the clients i ≡ j (mod G).
func (f *fleet) makeGroup(ctx context.Context, s *stack.Stack, j int) error {
	name := fmt.Sprintf("g%05d", j)
	gid, err := s.Keyserver().CreateGroup(ctx, keyserver.Actor{}, name, events.Policy{})
	if err != nil {
		return fmt.Errorf("creating group %s: %w", name, err)
	}
	var names []string
	var in []*member
	for i := j; i < len(f.members); i += len(f.groups) {
		names, in = append(names, f.members[i].name), append(in, f.members[i])
	}
	if _, err := s.Keyserver().AddMembers(ctx, keyserver.Actor{}, name, names); err != nil {
		return fmt.Errorf("adding members to %s: %w", name, err)
	}
	for _, m := range in {
		m.group, m.groupSize = gid, len(in)
	}
	f.groups[j] = gid
	return nil
}

// connect dials every client through the gateway, a few at a time, and
// waits until each holds its group's key.
func (f *fleet) connect(ctx context.Context, s *stack.Stack, logf func(string, ...any)) error {
	sem := make(chan struct{}, 32)
	errs := make(chan error, len(f.members))
	var wg sync.WaitGroup
	for _, m := range f.members {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs <- m.connect(ctx, s, logf)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (m *member) connect(ctx context.Context, s *stack.Stack, logf func(string, ...any)) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := clientsdk.Dial(ctx, clientsdk.Config{
		Addr: s.GatewayAddr(), Identity: m.id, ServerKey: s.Keys().Gateway.Public(), KeyserverKey: s.Keys().Keyserver.Public(),
		Buffer: 1024, Logf: func(f string, a ...any) { logf(m.name+": "+f, a...) },
	})
	if err != nil {
		return fmt.Errorf("client %s: %w", m.name, err)
	}
	m.client = c
	if err := c.WaitKey(ctx, m.group); err != nil {
		return fmt.Errorf("client %s: no key for its group: %w", m.name, err)
	}
	return nil
}

// close disconnects every client (nothing for a nil fleet).
func (f *fleet) close() {
	if f == nil {
		return
	}
	var wg sync.WaitGroup
	for _, m := range f.members {
		if m.client != nil {
			wg.Go(func() { m.client.Close() })
		}
	}
	wg.Wait()
}
