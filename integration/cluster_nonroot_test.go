//go:build docker

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// checkInit: deploy/init prints the next steps of the compose stack, not
// those of ksctl init, and leaves the containers' private files to
// their user and the operator's to the operator.
func (c *cluster) checkInit(out string) {
	c.t.Helper()
	for _, want := range []string{"Next steps (docker compose)", "docker-compose up -d",
		"--nats-creds " + c.secrets + "/nats/admin.nk", "COMM_NATS_CA=" + c.secrets + "/nats/ca.pem", "tls://127.0.0.1:4223"} {
		if !strings.Contains(out, want) {
			c.t.Errorf("deploy/init's output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "keyserver --nats nats://127.0.0.1:4222") {
		c.t.Errorf("deploy/init prints ksctl init's next steps:\n%s", out)
	}
	for f, uid := range map[string]uint32{"nats/relay.nk": 65532, "keys/keyserver.key": 65532, "nats/nats-1.key": 65532,
		"nats/admin.nk": uint32(os.Getuid()), "keys/operator.key": uint32(os.Getuid())} {
		st, err := os.Stat(filepath.Join(c.secrets, f))
		if err != nil {
			c.t.Fatal(err)
		}
		if got := st.Sys().(*syscall.Stat_t).Uid; got != uid || st.Mode().Perm() != 0o600 {
			c.t.Errorf("%s: uid %d mode %04o, want uid %d mode 0600", f, got, st.Mode().Perm(), uid)
		}
	}
}

// numericNonRoot matches a USER that is a number other than 0, with an
// optional numeric group.
var numericNonRoot = regexp.MustCompile(`^[1-9][0-9]*(:[0-9]+)?$`)

// checkContainersNonRoot: every container of the stack runs as a numeric
// non-root user with a read-only root.
func (c *cluster) checkContainersNonRoot() {
	c.t.Helper()
	ids := strings.Fields(c.run("docker", "ps", "-q", "--filter", "label=com.docker.compose.project="+c.project))
	for _, id := range ids {
		out := strings.TrimSpace(c.run("docker", "inspect", "--format", "{{.Name}} {{.Config.User}} {{.HostConfig.ReadonlyRootfs}}", id))
		f := strings.Fields(out)
		if len(f) != 3 || !numericNonRoot.MatchString(f[1]) || f[2] != "true" {
			c.t.Errorf("container %s: want a numeric non-root user and a read-only root", out)
		}
	}
	c.t.Logf("%d containers, each as a numeric non-root user with a read-only root", len(ids))
}

// TestClusterImagesNonRoot: every image deploy/build-images makes runs as
// a numeric user other than root, as docker inspect shows it.
func TestClusterImagesNonRoot(t *testing.T) {
	if exec.Command("docker", "info").Run() != nil {
		t.Skip("no Docker engine answers")
	}
	root, _ := filepath.Abs("..")
	c := &cluster{t: t, root: root, env: os.Environ()}
	c.run("deploy/build-images")
	for _, img := range []string{"nats-server", "keyserver", "relay", "gateway", "ksctl"} {
		ref := "communicator/" + img + ":" + c.imageTag()
		user := strings.TrimSpace(c.run("docker", "image", "inspect", "--format", "{{.Config.User}}", ref))
		if !numericNonRoot.MatchString(user) {
			t.Errorf("%s runs as %q, want a numeric user other than 0", ref, user)
		} else {
			t.Logf("%s: user %s", ref, user)
		}
	}
}
