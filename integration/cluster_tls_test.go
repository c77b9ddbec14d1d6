//go:build docker

package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

var nodes = []string{"nats-1", "nats-2", "nats-3"}

func (c *cluster) imageTag() string {
	if tag := os.Getenv("COMM_IMAGE_TAG"); tag != "" {
		return tag
	}
	return "dev"
}

// onNetwork runs image on the project's network with args; it returns
// the output and the exit status.
func (c *cluster) onNetwork(image string, dockerArgs []string, args ...string) (string, int) {
	c.t.Helper()
	full := append([]string{"run", "--rm", "--network", c.project + "_default"}, dockerArgs...)
	full = append(append(full, "communicator/"+image+":"+c.imageTag()), args...)
	out, err := exec.Command("docker", full...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	c.t.Fatalf("docker %s: %v\n%s", strings.Join(full, " "), err, out)
	return "", -1
}

// probeDir builds integration/natsprobe (static) into a directory with
// copies of the auditor's seed and the CA certificate that the
// containers' user may read.
func (c *cluster) probeDir() string {
	c.t.Helper()
	dir := c.t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "natsprobe"), "./integration/natsprobe")
	build.Dir, build.Env = c.root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		c.t.Fatalf("building natsprobe: %v\n%s", err, out)
	}
	for _, f := range []string{"auditor.nk", "ca.pem"} {
		data, err := os.ReadFile(filepath.Join(c.secrets, "nats", f))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, f), data, 0o644)
		}
		if err != nil {
			c.t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	return dir
}

// routePassword reads the routes' password from comminit's cluster.conf.
func (c *cluster) routePassword() string {
	c.t.Helper()
	data, err := os.ReadFile(filepath.Join(c.secrets, "nats", "cluster.conf"))
	if err != nil {
		c.t.Fatal(err)
	}
	m := regexp.MustCompile(`password: "([0-9a-f]+)"`).FindSubmatch(data)
	if m == nil {
		c.t.Fatal("no route password in cluster.conf")
	}
	return string(m[1])
}

// checkTLS: every node refuses NATS without TLS, from a container on the
// stack's network (nodes 2 and 3 are published on loopback only): a
// client with valid credentials, sending CONNECT and PING in the clear,
// gets no PONG and a closed connection, while the same credentials over
// TLS, verified against comminit's CA, are accepted, so the refusal is
// about TLS alone; a route's CONNECT with the routes' password gets not a
// byte of NATS back, and the route port presents the node's certificate
// from the CA. The monitoring port answers inside the node's container
// only.
func (c *cluster) checkTLS() {
	c.t.Helper()
	dir := c.probeDir()
	mount := []string{"-v", dir + ":/probe:ro", "--entrypoint", "/probe/natsprobe"}
	pass := c.routePassword()
	for _, n := range nodes {
		for _, probe := range []struct {
			args []string
			want string
		}{
			{[]string{"plain", n + ":4222", "--seed", "/probe/auditor.nk"}, "refused: " + n + " announced tls_required"},
			{[]string{"tls", "tls://" + n + ":4222", "--seed", "/probe/auditor.nk", "--ca", "/probe/ca.pem"}, "accepted: " + n + " over TLS"},
			{[]string{"route", n + ":6222", "--user", "route", "--pass", pass, "--ca", "/probe/ca.pem"}, "refused: " + n + ":6222 closed the plaintext route connection"},
		} {
			out, code := c.onNetwork("ksctl", mount, probe.args...)
			if code != 0 || !strings.HasPrefix(out, probe.want) {
				c.t.Fatalf("natsprobe %s: exit %d %q, want exit 0 and %q", strings.Join(probe.args[:2], " "), code, out, probe.want)
			}
			c.t.Logf("natsprobe %s %s: %s", probe.args[0], probe.args[1], strings.TrimSpace(out))
		}
		url := fmt.Sprintf("http://%s:8222/healthz", n)
		out, code := c.onNetwork("ksctl", []string{"--entrypoint", "/httpprobe"}, url)
		if code == 0 || !strings.Contains(out, "connection refused") {
			c.t.Fatalf("%s from the network: exit %d %q, want connection refused", url, code, out)
		}
		id := c.containers(n)[0]
		if out, err := exec.Command("docker", "exec", id, "/httpprobe", "http://127.0.0.1:8222/healthz").CombinedOutput(); err != nil {
			c.t.Fatalf("%s's monitoring inside its container: %v %s", n, err, out)
		}
	}
	c.t.Log("every node: plaintext refused for clients and routes, TLS with the CA accepted, monitoring on loopback only")
}

// ksctl runs the ksctl that deploy/build-images built, from the host, as
// an operator does.
func (c *cluster) ksctl(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(c.root, "deploy", ".build", "ksctl"), args...)
	cmd.Dir = c.root
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// checkKsctlFromHost: ksctl on the host, given the nodes' published URLs
// in order, reaches the cluster over TLS, past a stopped node listed first.
func (c *cluster) checkKsctlFromHost(urls ...string) {
	c.t.Helper()
	out, err := c.ksctl("--nats", strings.Join(urls, ","), "--nats-ca", c.caFile(),
		"--nats-creds", filepath.Join(c.secrets, "nats", "admin.nk"), "--operator-key", filepath.Join(c.secrets, "keys", "operator.key"), "list")
	if err != nil || !strings.Contains(out, "GROUPS (") {
		c.t.Fatalf("ksctl list with %s first: %v\n%s", urls[0], err, out)
	}
	c.t.Logf("ksctl list from the host with %s (stopped) first: ok", urls[0])
}
