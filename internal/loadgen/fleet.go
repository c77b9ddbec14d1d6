package loadgen

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/commsec/communicator/clientsdk"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/stack"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
)

// Member is one client of the load: its identity, its group and, once
// connected, its SDK client.
type Member struct {
	Name      string
	ID        *keys.ClientIdentity
	Group     protocol.GroupID
	GroupSize int
	Client    *clientsdk.Client
}

// Fleet is every client, client i in group i mod G.
type Fleet struct {
	Members []*Member
	Groups  []protocol.GroupID
}

// FleetConfig says which clients to make.
type FleetConfig struct {
	// Prefix starts every client and group name, so that several fleets
	// can share a keyserver ("" is fine for one).
	Prefix  string
	Clients int
	Groups  int // each group gets Clients/Groups or one more members
}

// Target is what a fleet needs of a Communicator: the keyserver, to
// register the clients and make the groups; a wait until every service
// has applied those changes; and a gateway to connect through, with the
// keys its clients pin. A *stack.Stack is one; a cluster's view through
// one of its gateways is another.
type Target interface {
	Keyserver() *keyserver.Keyserver
	Sync(ctx context.Context) error
	GatewayAddr() string
	Keys() *stack.Keys
}

var _ Target = (*stack.Stack)(nil)

// Provision registers the clients and creates the groups, then waits
// until the relay and the gateway have applied every change.
func Provision(ctx context.Context, s Target, c FleetConfig) (*Fleet, error) {
	f := &Fleet{Members: make([]*Member, c.Clients), Groups: make([]protocol.GroupID, c.Groups)}
	regs := make([]keyserver.Registration, c.Clients)
	for i := range f.Members {
		id, err := keys.GenerateClientIdentity(nil)
		if err != nil {
			return nil, err
		}
		f.Members[i] = &Member{Name: fmt.Sprintf("%sc%05d", c.Prefix, i), ID: id}
		regs[i] = keyserver.Registration{Public: id.Public(), Name: f.Members[i].Name}
	}
	if err := s.Keyserver().RegisterClients(ctx, keyserver.Actor{}, regs); err != nil {
		return nil, fmt.Errorf("loadgen: registering clients: %w", err)
	}
	for j := range f.Groups {
		if err := f.makeGroup(ctx, s, c.Prefix, j); err != nil {
			return nil, err
		}
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return f, s.Sync(sctx)
}

// makeGroup creates group j with the clients i ≡ j (mod G).
func (f *Fleet) makeGroup(ctx context.Context, s Target, prefix string, j int) error {
	name := fmt.Sprintf("%sg%05d", prefix, j)
	gid, err := s.Keyserver().CreateGroup(ctx, keyserver.Actor{}, name, record.Policy{})
	if err != nil {
		return fmt.Errorf("loadgen: creating group %s: %w", name, err)
	}
	var names []string
	var in []*Member
	for i := j; i < len(f.Members); i += len(f.Groups) {
		names, in = append(names, f.Members[i].Name), append(in, f.Members[i])
	}
	if _, err := s.Keyserver().AddMembers(ctx, keyserver.Actor{}, name, names); err != nil {
		return fmt.Errorf("loadgen: adding members to %s: %w", name, err)
	}
	for _, m := range in {
		m.Group, m.GroupSize = gid, len(in)
	}
	f.Groups[j] = gid
	return nil
}

// Connect dials every client through the gateway, a few at a time, and
// waits until each holds its group's key. logf receives the clients'
// diagnostics.
func (f *Fleet) Connect(ctx context.Context, s Target, logf func(string, ...any)) error {
	sem := make(chan struct{}, 32)
	errs := make(chan error, len(f.Members))
	var wg sync.WaitGroup
	for _, m := range f.Members {
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

func (m *Member) connect(ctx context.Context, s Target, logf func(string, ...any)) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := clientsdk.Dial(ctx, clientsdk.Config{
		Addr: s.GatewayAddr(), Identity: m.ID, ServerKey: s.Keys().Gateway.Public(), KeyserverKey: s.Keys().Keyserver.Public(),
		Buffer: 1024, Logf: func(f string, a ...any) { logf(m.Name+": "+f, a...) },
	})
	if err != nil {
		return fmt.Errorf("loadgen: client %s: %w", m.Name, err)
	}
	m.Client = c
	if err := c.WaitKey(ctx, m.Group); err != nil {
		return fmt.Errorf("loadgen: client %s: no key for its group: %w", m.Name, err)
	}
	return nil
}

// Close disconnects every client (nothing for a nil fleet).
func (f *Fleet) Close() {
	if f == nil {
		return
	}
	var wg sync.WaitGroup
	for _, m := range f.Members {
		if m.Client != nil {
			wg.Go(func() { m.Client.Close() })
		}
	}
	wg.Wait()
}

// LimitedLog prints the clients' diagnostics up to Max lines, then counts
// them silently.
type LimitedLog struct {
	mu  sync.Mutex
	W   func(string, ...any)
	Max int
	n   int
}

// Logf is a clientsdk.Config.Logf.
func (l *LimitedLog) Logf(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	switch {
	case l.n <= l.Max:
		l.W("client: "+format, a...)
	case l.n == l.Max+1:
		l.W("client: (further client diagnostics not shown)")
	}
}
