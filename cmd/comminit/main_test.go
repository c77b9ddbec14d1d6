package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/commsec/communicator/internal/natsauth"
)

func comminit(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// TestWrite: the credentials, the cluster block and the certificates, each
// private file 0600; nats-server parses what it includes; every node's
// certificate verifies against ca.pem under the names clients and routes
// use; a second run refuses to replace them, --force replaces them all.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := comminit(t, "--dir", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "valid until "+time.Now().Add(2*365*24*time.Hour).UTC().Format(time.DateOnly)) {
		t.Errorf("output %q does not say until when the certificates are valid", out)
	}
	nats := filepath.Join(dir, "nats")
	private := []string{"auth.conf", "cluster.conf", "nats-1.key", "nats-2.key", "nats-3.key"}
	for _, r := range natsauth.Roles {
		private = append(private, string(r)+".nk")
	}
	for _, f := range private {
		checkMode(t, filepath.Join(nats, f), 0o600)
	}
	for _, f := range []string{"ca.pem", "nats-1.pem", "nats-2.pem", "nats-3.pem"} {
		checkMode(t, filepath.Join(nats, f), 0o644)
	}
	cluster := read(t, nats, "cluster.conf")
	for _, want := range []string{"tls {", "verify: true", `ca_file: "/etc/nats/secrets/ca.pem"`, "no_advertise: true", "@nats-3:6222"} {
		if !strings.Contains(cluster, want) {
			t.Errorf("cluster.conf lacks %q:\n%s", want, cluster)
		}
	}
	parse(t, nats)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(read(t, nats, "ca.pem")))
	for _, n := range []string{"nats-1", "nats-2", "nats-3"} {
		pair, err := tls.LoadX509KeyPair(filepath.Join(nats, n+".pem"), filepath.Join(nats, n+".key"))
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(pair.Certificate[0])
		for _, name := range []string{n, "localhost", "127.0.0.1"} {
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				t.Errorf("%s as %s: %v", n, name, err)
			}
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s as a route's client: %v", n, err)
		}
	}
	if entries, _ := os.ReadDir(nats); len(entries) != len(private)+4 {
		t.Errorf("%d files in %s, want %d (no CA key kept)", len(entries), nats, len(private)+4)
	}

	before := read(t, nats, "ca.pem")
	if _, errOut, code := comminit(t, "--dir", dir); code != 1 || !strings.Contains(errOut, "already holds credentials") {
		t.Errorf("second run: exit %d %q", code, errOut)
	}
	if _, errOut, code := comminit(t, "--dir", dir, "--force"); code != 0 {
		t.Fatalf("--force: exit %d %s", code, errOut)
	}
	if read(t, nats, "ca.pem") == before {
		t.Error("--force kept the old CA")
	}
}

// parse has nats-server read auth.conf and cluster.conf as nats-1 does,
// with the paths where compose mounts the TLS files made local.
func parse(t *testing.T, nats string) {
	t.Helper()
	cluster := strings.NewReplacer(nodeCert, filepath.Join(nats, "nats-1.pem"), nodeKey, filepath.Join(nats, "nats-1.key"),
		nodeCA, filepath.Join(nats, "ca.pem")).Replace(read(t, nats, "cluster.conf"))
	conf := filepath.Join(nats, "node.conf") // includes are relative to it
	if err := os.WriteFile(conf, []byte(cluster+"include ./auth.conf\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(conf)
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("nats-server refuses the configuration: %v", err)
	}
	if opts.Cluster.Name != "comm" || len(opts.Routes) != 3 || opts.Cluster.TLSConfig == nil || opts.Cluster.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert || !opts.Cluster.NoAdvertise {
		t.Errorf("cluster %q with %d routes, TLS %v verify %v", opts.Cluster.Name, len(opts.Routes), opts.Cluster.TLSConfig != nil, opts.Cluster.TLSConfig != nil && opts.Cluster.TLSConfig.ClientAuth == tls.RequireAndVerifyClientCert)
	}
	if len(opts.Nkeys) != len(natsauth.Roles) {
		t.Errorf("%d nkey users, want %d", len(opts.Nkeys), len(natsauth.Roles))
	}
}

// TestOwner: --owner hands exactly the files the containers read to the
// containers' user, mode 0600, and leaves the operator's own; without
// root it says that it needs root.
func TestOwner(t *testing.T) {
	dir := t.TempDir()
	if _, errOut, code := comminit(t, "--dir", dir, "--owner", "65532"); code != 1 || !strings.Contains(errOut, "ksctl init --dir") {
		t.Errorf("--owner before anything exists: exit %d %q", code, errOut)
	}
	if _, errOut, code := comminit(t, "--dir", dir); code != 0 {
		t.Fatal(errOut)
	}
	keys := filepath.Join(dir, "keys")
	os.MkdirAll(keys, 0o700)
	for _, f := range []string{"keyserver.key", "gateway.key", "operator.key"} {
		os.WriteFile(filepath.Join(keys, f), []byte("x"), 0o600)
	}
	out, errOut, code := comminit(t, "--dir", dir, "--owner", "65532")
	if os.Geteuid() != 0 {
		if code != 1 || !strings.Contains(errOut, "needs root: sudo comminit --dir "+dir+" --owner 65532") {
			t.Errorf("as a user: exit %d %q", code, errOut)
		}
		return
	}
	if code != 0 {
		t.Fatalf("exit %d %s", code, errOut)
	}
	handed := map[string]bool{}
	for _, f := range containerFiles([]string{"nats-1", "nats-2", "nats-3"}) {
		handed[f] = true
	}
	if len(handed) != 10 || !strings.Contains(out, "handed 10 files") {
		t.Errorf("%d files handed over: %s", len(handed), out)
	}
	for _, f := range []string{"nats/admin.nk", "nats/auditor.nk", "keys/operator.key", "nats/auth.conf", "nats/nats-2.key", "nats/gateway.nk", "keys/keyserver.key"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		uid := st.Sys().(*syscall.Stat_t).Uid
		if want := map[bool]uint32{true: 65532, false: 0}[handed[f]]; uid != want || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: uid %d mode %04o, want uid %d mode 0600", f, uid, st.Mode().Perm(), want)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--nodes", "nats-1,,nats-3"}, "want host names"},
		{[]string{"--nodes", "a b"}, "want host names"},
		{[]string{"--owner", "0"}, "--owner takes the containers' user id"},
		{[]string{"--owner", "65532", "--force"}, "makes nothing"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--bogus"}, "flag provided but not defined"},
	} {
		if _, errOut, code := comminit(t, append([]string{"--dir", t.TempDir()}, c.args...)...); code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d %q, want 2 and %q", c.args, code, errOut, c.want)
		}
	}
	if _, errOut, code := comminit(t, "--help"); code != 2 || !strings.Contains(errOut, "--owner UID") {
		t.Errorf("--help: exit %d %q", code, errOut)
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != want {
		t.Errorf("%s: mode %04o, want %04o", path, st.Mode().Perm(), want)
	}
}

func read(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
