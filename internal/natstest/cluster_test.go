package natstest_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natstest"
)

// TestIsolate: a node cut off from the others keeps its clients
// connected, but JetStream no longer answers through it; the two others
// keep a meta leader and answer. Once it rejoins, it answers again.
func TestIsolate(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	lone := (c.MetaLeader() + 1) % 3
	other := (lone + 1) % 3
	ncLone := c.Conn(t, lone, natsauth.Gateway)
	ncOther := c.Conn(t, other, natsauth.Gateway)
	if err := accountInfo(ncLone); err != nil {
		t.Fatalf("before the cut, through %s: %v", c.Nodes[lone].Name(), err)
	}
	c.Isolate(lone)
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		if err := accountInfo(ncLone); err == nil {
			return errors.New("JetStream still answers through the isolated node")
		}
		return nil
	})
	if !ncLone.IsConnected() || c.NodeOf(ncLone) != lone {
		t.Errorf("the client of the isolated node: connected %v to node %d", ncLone.IsConnected(), c.NodeOf(ncLone))
	}
	c.WaitJetStream(t, 30*time.Second)
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error { return accountInfo(ncOther) })
	c.Rejoin(lone)
	natstest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error { return accountInfo(ncLone) })
}

// accountInfo asks JetStream for the info of the role's home account:
// nil once JetStream answers it.
func accountInfo(nc *nats.Conn) error {
	m, err := nc.Request("$JS.API.INFO", nil, time.Second)
	if err != nil {
		return err
	}
	var resp struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return err
	}
	if resp.Error != nil {
		return fmt.Errorf("JetStream: %s", resp.Error.Description)
	}
	return nil
}
