package keyserver_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

type env struct {
	t        *testing.T
	ctx      context.Context
	srv      *natstest.Server
	nc       *nats.Conn // the keyserver's
	js       jetstream.JetStream
	admin    *nats.Conn // ksctl's role
	ksKey    *keys.SigningKey
	operator *keys.SigningKey
	clock    *clock
}

// clock is a settable clock for policy tests.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }
func newEnv(t *testing.T, fast bool) *env {
	var srv *natstest.Server
	if fast {
		srv = natstest.StartFast(t)
	} else {
		srv = natstest.Start(t)
	}
	nc := srv.Conn(t, natsauth.Keyserver)
	js, _ := jetstream.New(nc)
	ks, _ := keys.GenerateSigningKey(nil)
	op, _ := keys.GenerateSigningKey(nil)
	return &env{t: t, ctx: t.Context(), srv: srv, nc: nc, js: js, admin: srv.Conn(t, natsauth.Admin), ksKey: ks, operator: op, clock: &clock{}}
}

func (e *env) start() *keyserver.Keyserver {
	e.t.Helper()
	k, err := keyserver.Start(e.ctx, e.nc, keyserver.Config{
		Key: e.ksKey, Operators: [][32]byte{e.operator.Public()}, Now: e.clock.now, PolicyInterval: 20 * time.Millisecond,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(k.Close)
	return k
}

func (e *env) client(k *keyserver.Keyserver, name string) *keys.ClientIdentity {
	e.t.Helper()
	id, err := keys.GenerateClientIdentity(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := k.RegisterClient(e.ctx, keyserver.Actor{}, id.Public(), name); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// bundleOf returns the member's last bundle of group g, opened.
func (e *env) bundleOf(g protocol.GroupID, member *keys.ClientIdentity) (*bundle.Bundle, [32]byte, error) {
	stream, err := e.js.Stream(e.ctx, streams.Bundles)
	if err != nil {
		return nil, [32]byte{}, err
	}
	m, err := stream.GetLastMsgForSubject(e.ctx, streams.BundleSubject(g, member.ID()))
	if err != nil {
		return nil, [32]byte{}, err
	}
	b, err := bundle.Parse(m.Data)
	if err != nil {
		return nil, [32]byte{}, err
	}
	ks := e.ksKey.Public()
	key, err := b.Open(&ks, member)
	return b, key, err
}

func TestMembershipOpensEpochsWithBundles(t *testing.T) {
	e := newEnv(t, false)
	k := e.start()
	alice, bob, carol := e.client(k, "alice"), e.client(k, "bob"), e.client(k, "carol")
	g, err := k.CreateGroup(e.ctx, keyserver.Actor{}, "ops", record.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	epoch, err := k.AddMembers(e.ctx, keyserver.Actor{}, "ops", []string{"alice", "bob", carol.ID().String()})
	if err != nil || epoch != 1 {
		t.Fatalf("add: epoch %d, %v", epoch, err)
	}
	var keys1 [][32]byte
	for _, m := range []*keys.ClientIdentity{alice, bob, carol} {
		b, key, err := e.bundleOf(g, m)
		if err != nil {
			t.Fatalf("bundle of %s: %v", m.ID().Short(), err)
		}
		if b.Epoch != 1 || b.Members != bundle.MemberDigest([]protocol.ClientID{alice.ID(), bob.ID(), carol.ID()}) {
			t.Fatalf("bundle epoch %d, digest of another member list", b.Epoch)
		}
		keys1 = append(keys1, key)
	}
	if keys1[0] != keys1[1] || keys1[1] != keys1[2] {
		t.Fatal("members got different keys for the same epoch")
	}
	if epoch, err = k.RemoveMembers(e.ctx, keyserver.Actor{}, "ops", []string{"carol"}, "left"); err != nil || epoch != 2 {
		t.Fatalf("remove: epoch %d, %v", epoch, err)
	}
	b, key2, err := e.bundleOf(g, alice)
	if err != nil || b.Epoch != 2 || key2 == keys1[0] {
		t.Fatalf("alice after the removal: epoch %d, fresh key %t, %v", b.Epoch, key2 != keys1[0], err)
	}
	if b, _, _ := e.bundleOf(g, carol); b.Epoch != 1 {
		t.Fatalf("carol got a bundle for epoch %d after her removal", b.Epoch)
	}
}

func TestInvalidCommandsHaveTheirOwnErrors(t *testing.T) {
	e := newEnv(t, false)
	k := e.start()
	alice := e.client(k, "alice")
	e.client(k, "bob")
	e.client(k, "carol")
	a := keyserver.Actor{}
	if _, err := k.CreateGroup(e.ctx, a, "ops", record.Policy{}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.AddMembers(e.ctx, a, "ops", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	if err := k.RevokeClient(e.ctx, a, "bob", "lost"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"register twice", k.RegisterClient(e.ctx, a, alice.Public(), "alice2"), fold.ErrClientExists},
		{"unknown client", second(k.AddMembers(e.ctx, a, "ops", []string{"nobody"})), fold.ErrUnknownClient},
		{"already a member", second(k.AddMembers(e.ctx, a, "ops", []string{"alice"})), fold.ErrAlreadyMember},
		{"named twice", second(k.RemoveMembers(e.ctx, a, "ops", []string{alice.ID().String(), "alice"}, "")), fold.ErrDuplicateClient},
		{"not a member", second(k.RemoveMembers(e.ctx, a, "ops", []string{"carol"}, "")), fold.ErrNotMember},
		{"group exists", second(k.CreateGroup(e.ctx, a, "ops", record.Policy{})), fold.ErrGroupExists},
		{"unknown group", second(k.Rekey(e.ctx, a, "nope", "")), fold.ErrUnknownGroup},
		{"revoked client", second(k.AddMembers(e.ctx, a, "ops", []string{revokedID(t, k)})), fold.ErrClientRevoked},
		{"bad group name", second(k.CreateGroup(e.ctx, a, "no spaces", record.Policy{})), fold.ErrBadName},
		{"add nobody", second(k.AddMembers(e.ctx, a, "ops", nil)), fold.ErrNoClients},
		{"identity point as client id", k.RegisterClient(e.ctx, a, keys.ClientPublic{ID: protocol.ClientID{1}, Wrap: alice.Public().Wrap}, "nobody"), keyserver.ErrInvalidClientID},
		{"identity point in a batch", k.RegisterClients(e.ctx, a, []keyserver.Registration{{Public: keys.ClientPublic{ID: protocol.ClientID{1}}, Name: "nobody"}}), keyserver.ErrInvalidClientID},
	}
	if err := k.DeleteGroup(e.ctx, a, "ops"); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, struct {
		name string
		err  error
		want error
	}{"deleted group", k.DeleteGroup(e.ctx, a, "ops"), fold.ErrUnknownGroup})
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.err, c.want)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func revokedID(t *testing.T, k *keyserver.Keyserver) string {
	var id string
	k.Projection().Read(func(s *fold.State) {
		for _, c := range s.Clients {
			if c.Revoked {
				id = c.ID.String()
			}
		}
	})
	return id
}

func TestRevokeRemovesFromEveryGroup(t *testing.T) {
	e := newEnv(t, false)
	k := e.start()
	a := keyserver.Actor{}
	e.client(k, "alice")
	bob := e.client(k, "bob")
	for _, name := range []string{"g1", "g2"} {
		k.CreateGroup(e.ctx, a, name, record.Policy{})
		if _, err := k.AddMembers(e.ctx, a, name, []string{"alice", "bob"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.RevokeClient(e.ctx, a, "bob", "stolen"); err != nil {
		t.Fatal(err)
	}
	k.Projection().Read(func(s *fold.State) {
		for _, name := range []string{"g1", "g2"} {
			g, _ := s.GroupByName(name)
			if g.IsMember(bob.ID()) || g.Epoch != 2 {
				t.Fatalf("%s after bob's revocation: epoch %d, bob member %t", name, g.Epoch, g.IsMember(bob.ID()))
			}
		}
	})
}

// TestConcurrentKeyserversNeverFork: two keyserver instances rekey one
// group at once; the loser of each race gets a conflict, reloads and
// retries, and every epoch appears once.
func TestConcurrentKeyserversNeverFork(t *testing.T) {
	e := newEnv(t, false)
	k1, k2 := e.start(), e.start()
	e.client(k1, "alice")
	g, _ := k1.CreateGroup(e.ctx, keyserver.Actor{}, "ops", record.Policy{})
	if _, err := k1.AddMembers(e.ctx, keyserver.Actor{}, "ops", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	const n = 10
	var wg sync.WaitGroup
	for _, k := range []*keyserver.Keyserver{k1, k2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if _, err := k.Rekey(e.ctx, keyserver.Actor{}, g.String(), "test"); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	fresh := e.start()
	fresh.Projection().Read(func(s *fold.State) {
		if got := s.Groups[g].Epoch; got != 1+2*n {
			t.Fatalf("epoch %d, want %d", got, 1+2*n)
		}
	})
	conflicts := k1.Metrics.Snapshot()["comm_keyserver_append_conflicts_total"] + k2.Metrics.Snapshot()["comm_keyserver_append_conflicts_total"]
	t.Logf("%d conflicts resolved by retry", conflicts)
}

// TestRecoveryRekeysIncompleteEpoch: a keyserver that crashed after
// appending an epoch's event but before publishing its bundles is
// followed by one that rekeys the group at start-up.
func TestRecoveryRekeysIncompleteEpoch(t *testing.T) {
	e := newEnv(t, false)
	k := e.start()
	alice := e.client(k, "alice")
	g, _ := k.CreateGroup(e.ctx, keyserver.Actor{}, "ops", record.Policy{})
	if _, err := k.AddMembers(e.ctx, keyserver.Actor{}, "ops", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	k.Close()
	// The "crash": epoch 2's event is in the log, its bundles are not.
	store, _ := events.OpenStore(e.ctx, e.js, events.StoreConfig{})
	p, _ := events.Load(e.ctx, store, e.ksKey.Public(), nil, nil)
	stop, _ := events.Follow(e.ctx, store, p, nil, nil)
	defer stop()
	w := events.NewWriter(store, p, e.ksKey, nil)
	d := bundle.MemberDigest([]protocol.ClientID{alice.ID()})
	if _, err := w.Append(e.ctx, record.NewEpoch(record.GroupRekeyed, g, 2, nil, d, "crash")); err != nil {
		t.Fatal(err)
	}
	e.start()
	b, _, err := e.bundleOf(g, alice)
	if err != nil || b.Epoch != 3 {
		t.Fatalf("after recovery alice's bundle is for epoch %v (%v), want 3", b, err)
	}
}

func TestPolicyRekeyByAge(t *testing.T) {
	e := newEnv(t, false)
	k := e.start()
	e.client(k, "alice")
	g, _ := k.CreateGroup(e.ctx, keyserver.Actor{}, "ops", record.Policy{MaxAge: time.Hour})
	k.AddMembers(e.ctx, keyserver.Actor{}, "ops", []string{"alice"})
	e.clock.advance(2 * time.Hour)
	waitEpoch(t, k, g, 2)
}

func TestPolicyRekeyByMessages(t *testing.T) {
	e := newEnv(t, false)
	k := e.start()
	e.client(k, "alice")
	g, _ := k.CreateGroup(e.ctx, keyserver.Actor{}, "ops", record.Policy{MaxMessages: 3})
	k.AddMembers(e.ctx, keyserver.Actor{}, "ops", []string{"alice"})
	relayJS, _ := jetstream.New(e.srv.Conn(t, natsauth.Relay)) // relays store accepted messages
	for i := range 3 {
		msg := nats.NewMsg(k.Shards().Subject(g, protocol.ClientID{byte(i)})) // on its group's shard
		msg.Header.Set(streams.HeaderEpoch, "1")
		msg.Data = []byte(fmt.Sprint(i))
		if _, err := relayJS.PublishMsg(e.ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	waitEpoch(t, k, g, 2)
}

func waitEpoch(t *testing.T, k *keyserver.Keyserver, g protocol.GroupID, want protocol.Epoch) {
	t.Helper()
	natstest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		var got protocol.Epoch
		k.Projection().Read(func(s *fold.State) { got = s.Groups[g].Epoch })
		if got < want {
			return fmt.Errorf("epoch %d, want %d", got, want)
		}
		return nil
	})
}
