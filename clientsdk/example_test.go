package clientsdk_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/commsec/communicator/clientsdk"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/stack"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol/clientstate"
	"github.com/commsec/communicator/protocol/keys"
)

// Example shows a device's whole life with the SDK against a one-machine
// stack: connect, receive the group key, send, and receive a message.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir, _ := os.MkdirTemp("", "clientsdk-example")
	defer os.RemoveAll(dir)
	s, err := stack.Start(ctx, stack.Config{DataDir: dir, Gateway: "127.0.0.1:0", HTTP: "127.0.0.1:0", SyncInterval: time.Minute})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	// The operator's side: register two devices and put them in a group.
	alice, bob := register(ctx, s, "alice"), register(ctx, s, "bob")
	group, _ := s.Keyserver().CreateGroup(ctx, keyserver.Actor{}, "ops", record.Policy{})
	s.Keyserver().AddMembers(ctx, keyserver.Actor{}, "ops", []string{"alice", "bob"})
	s.Sync(ctx)

	// The devices' side: each knows its identity and the two public keys.
	dial := func(id *keys.ClientIdentity, state clientstate.Store) *clientsdk.Client {
		c, err := clientsdk.Dial(ctx, clientsdk.Config{
			Addr: s.GatewayAddr(), Identity: id, Store: state,
			ServerKey: s.Keys().Gateway.Public(), KeyserverKey: s.Keys().Keyserver.Public(),
		})
		if err != nil {
			panic(err)
		}
		c.WaitKey(ctx, group)
		return c
	}
	a := dial(alice, &clientstate.MemStore{}) // a device uses a clientstate.FileStore
	defer a.Close()
	b := dial(bob, &clientstate.MemStore{})
	defer b.Close()

	if err := a.Send(ctx, group, []byte("meet at the north gate")); err != nil {
		fmt.Println(err)
		return
	}
	m := <-b.Messages()
	fmt.Printf("bob got %q in epoch %d\n", m.Payload, m.Epoch)
	// Output: bob got "meet at the north gate" in epoch 1
}

func register(ctx context.Context, s *stack.Stack, name string) *keys.ClientIdentity {
	id, _ := keys.GenerateClientIdentity(nil)
	s.Keyserver().RegisterClient(ctx, keyserver.Actor{}, id.Public(), name)
	return id
}

// ExampleDial is what a device's firmware does: load its identity and the
// two pinned public keys from files, keep its state in a file, and stay
// connected. (Not run: it needs a gateway at gw.example:7400.)
func ExampleDial() {
	read := func(path string) []byte {
		data, err := keys.ReadFile(path)
		if err != nil {
			panic(err)
		}
		return data
	}
	id, _ := keys.DecodeClientIdentity(read("/etc/comm/device.key"))
	pkS, _ := keys.DecodePublicKey(read("/etc/comm/gateway.pub"), keys.KindServerPublic)
	pkKs, _ := keys.DecodePublicKey(read("/etc/comm/keyserver.pub"), keys.KindKeyserverPublic)
	c, err := clientsdk.Dial(context.Background(), clientsdk.Config{
		Addr: "gw.example:7400", Identity: id, ServerKey: pkS, KeyserverKey: pkKs,
		Store: &clientstate.FileStore{Path: "/var/lib/comm/state"},
	})
	if err != nil {
		panic(err) // e.g. the gateway does not admit this device: is it registered?
	}
	defer c.Close()
	for m := range c.Messages() {
		fmt.Printf("%s from %s: %s\n", m.Group, m.Sender.Short(), m.Payload)
	}
}
