package embeddednats

import (
	"strings"
	"testing"
)

// TestClusterValidate: a node's clustering is refused without a cluster
// name, or with a route listener off loopback.
func TestClusterValidate(t *testing.T) {
	cases := []struct {
		c    Cluster
		want string
	}{
		{Cluster{Listen: "127.0.0.1:0"}, "needs a name"},
		{Cluster{Name: "c", Listen: "0.0.0.0:6222"}, "not loopback"},
		{Cluster{Name: "c", Listen: "6222"}, "cluster listen address"},
	}
	for _, c := range cases {
		o := Options{DataDir: t.TempDir(), Cluster: &c.c}
		if err := o.validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.c, err, c.want)
		}
	}
	o := Options{DataDir: t.TempDir(), Cluster: &Cluster{Name: "c", Listen: "127.0.0.1:0", Routes: []string{"nats-route://127.0.0.1:1"}}}
	if err := o.validate(); err != nil {
		t.Errorf("a loopback node: %v", err)
	}
}
