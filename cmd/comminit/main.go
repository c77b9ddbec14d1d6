// Command comminit creates the NATS credentials and certificates of a
// clustered deployment (docker-compose.yml): the accounts of package
// natsauth (one per role, one per stream) with one nkey user per role, the
// password the cluster's nodes use between them, and the TLS certificates
// of every NATS connection (package natstls).
//
//	comminit --dir deploy/secrets [--nodes nats-1,nats-2,nats-3] [--force]
//	comminit --dir deploy/secrets --owner 65532
//
// It writes, in DIR/nats:
//
//	auth.conf        the accounts and users, included by every node
//	cluster.conf     the cluster block: routes with their password, over
//	                 TLS both ways
//	<role>.nk        the nkey seed of each role (mode 0600): keyserver,
//	                 relay, gateway, admin (ksctl), auditor (ksctl audit)
//	ca.pem           the CA certificate clients verify the nodes with
//	<node>.pem       each node's certificate (its name, localhost and
//	<node>.key       127.0.0.1), and its key (mode 0600)
//
// The CA's key is not kept: `--force` issues everything anew.
//
// With --owner it makes nothing and hands the private files the
// containers read (DIR/nats and DIR/keys from ksctl init) to the
// containers' user, so that they can read them while no other user of
// the machine can; that needs root.
//
// Nothing it writes may be committed: .gitignore keeps deploy/secrets out.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/commsec/communicator/internal/atomicfile"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natstls"
)

const usage = `comminit creates the NATS credentials and certificates of a clustered
deployment (docker-compose.yml).

Usage:
  comminit --dir DIR [--nodes nats-1,nats-2,nats-3] [--force]
  comminit --dir DIR [--nodes ...] --owner UID

The first form writes DIR/nats/auth.conf (an account per role and per
stream, one nkey user per role; see docs/SECURITY.md), DIR/nats/cluster.conf
(routes between the nodes with their password, over TLS), DIR/nats/<role>.nk,
the nkey seed of each role (mode 0600), for the --nats-creds flags, and the
TLS files: DIR/nats/ca.pem, the CA certificate for the --nats-ca flags, and
DIR/nats/<node>.pem and <node>.key (mode 0600), each node's certificate
(for its name, localhost and 127.0.0.1) and key. Certificates are valid
for two years; the CA's key is not kept, so --force issues everything anew
(then restart the whole stack). The Communicator's own keys come from
'ksctl init --dir DIR/keys'.

The second form makes nothing: it hands the private files the containers
read (DIR/nats: auth.conf, cluster.conf, the nodes' keys, the services'
seeds; DIR/keys: keyserver.key, gateway.key) to UID, the containers' user
(65532 in our images), keeping mode 0600: the containers can read them, no
other user of the machine can. It needs root. admin.nk, auditor.nk and
operator.key stay yours.

Flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("comminit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	dir := fs.String("dir", "deploy/secrets", "the `DIR` to write into (DIR/nats)")
	nodesFlag := fs.String("nodes", "nats-1,nats-2,nats-3", "the cluster's node host names, comma-separated")
	force := fs.Bool("force", false, "overwrite existing credentials and certificates")
	owner := fs.Int("owner", -1, "hand the files the containers read to `UID` (needs root) instead of making anything")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	nodes, err := parseNodes(*nodesFlag)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err == nil && *owner != -1 && (*force || *owner <= 0) {
		err = errors.New("--owner takes the containers' user id (not 0), and makes nothing: run it without --force, after the credentials exist")
	}
	if err != nil {
		fmt.Fprintf(stderr, "comminit: %v\nRun 'comminit --help' for usage.\n", err)
		return 2
	}
	if *owner > 0 {
		err = handOver(stdout, *dir, nodes, *owner)
	} else {
		err = write(stdout, filepath.Join(*dir, "nats"), nodes, *force, time.Now())
	}
	if err != nil {
		fmt.Fprintln(stderr, "comminit:", err)
		return 1
	}
	return 0
}

// parseNodes splits the comma-separated node names; each must be a host
// name, as it is also a route's host and a certificate's name.
func parseNodes(s string) ([]string, error) {
	var nodes []string
	for n := range strings.SplitSeq(s, ",") {
		n = strings.TrimSpace(n)
		if n == "" || strings.ContainsAny(n, " /:@\"\\") {
			return nil, fmt.Errorf("--nodes %q: want host names separated by commas, e.g. nats-1,nats-2,nats-3", s)
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

func write(w io.Writer, dir string, nodes []string, force bool, now time.Time) error {
	if _, err := os.Stat(filepath.Join(dir, "auth.conf")); err == nil && !force {
		return fmt.Errorf("%s already holds credentials (use --force to replace them, then restart everything)", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	creds, err := natsauth.NewCreds()
	if err != nil {
		return err
	}
	defer creds.Wipe()
	if err := creds.Write(dir); err != nil {
		return err
	}
	users := creds.Users()
	if err := atomicfile.Write(filepath.Join(dir, "auth.conf"), []byte(natsauth.Config(users)), 0o600); err != nil {
		return err
	}
	if err := writeCluster(dir, nodes); err != nil {
		return err
	}
	until, err := writeCerts(dir, nodes, now)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote %s: auth.conf, cluster.conf and a seed per role (%d roles); TLS: ca.pem and a certificate per node (%s), valid until %s\n",
		dir, len(users), strings.Join(nodes, ", "), until.UTC().Format(time.DateOnly))
	return nil
}

// Where the nodes find their TLS files: compose mounts each node's own
// certificate and key under these names.
const (
	nodeCert = "/etc/nats/secrets/server.pem"
	nodeKey  = "/etc/nats/secrets/server.key"
	nodeCA   = "/etc/nats/secrets/ca.pem"
)

// writeCluster writes the cluster block: every node routes to every node
// with a random password, over TLS that both ends verify against the CA.
// Clients are not told the nodes' internal addresses (no_advertise): they
// use the URLs they were given, which the certificates name.
func writeCluster(dir string, nodes []string) error {
	var pw [24]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return err
	}
	pass := hex.EncodeToString(pw[:])
	routes := make([]string, len(nodes))
	for i, n := range nodes {
		routes[i] = fmt.Sprintf("%q", fmt.Sprintf("nats-route://route:%s@%s:6222", pass, n))
	}
	conf := fmt.Sprintf(`# Generated by comminit: the routes between the cluster's nodes.
cluster {
  name: comm
  listen: 0.0.0.0:6222
  no_advertise: true
  authorization { user: route, password: %q }
  tls {
    cert_file: %q
    key_file: %q
    ca_file: %q
    verify: true
    timeout: 2
  }
  routes: [%s]
}
`, pass, nodeCert, nodeKey, nodeCA, strings.Join(routes, ", "))
	return atomicfile.Write(filepath.Join(dir, "cluster.conf"), []byte(conf), 0o600)
}

// writeCerts makes a CA, a certificate and key per node, and forgets the
// CA's key. It returns when they expire.
func writeCerts(dir string, nodes []string, now time.Time) (time.Time, error) {
	ca, err := natstls.NewCA("Communicator NATS CA", now)
	if err != nil {
		return time.Time{}, err
	}
	if err := atomicfile.Write(filepath.Join(dir, "ca.pem"), ca.CertPEM(), 0o644); err != nil {
		return time.Time{}, err
	}
	for _, n := range nodes {
		cert, key, err := ca.Issue([]string{n, "localhost", "127.0.0.1"}, now)
		if err != nil {
			return time.Time{}, err
		}
		err = atomicfile.Write(filepath.Join(dir, n+".key"), key, 0o600)
		clear(key)
		if err != nil {
			return time.Time{}, err
		}
		if err := atomicfile.Write(filepath.Join(dir, n+".pem"), cert, 0o644); err != nil {
			return time.Time{}, err
		}
	}
	return ca.NotAfter(), nil
}

// containerFiles are the private files the containers read (see the
// volumes of docker-compose.yml), relative to DIR.
func containerFiles(nodes []string) []string {
	files := []string{"nats/auth.conf", "nats/cluster.conf", "keys/keyserver.key", "keys/gateway.key"}
	for _, r := range []natsauth.Role{natsauth.Keyserver, natsauth.Relay, natsauth.Gateway} {
		files = append(files, filepath.Join("nats", string(r)+".nk"))
	}
	for _, n := range nodes {
		files = append(files, filepath.Join("nats", n+".key"))
	}
	return files
}

// handOver gives the containers' private files to uid (group too), mode
// 0600.
func handOver(w io.Writer, dir string, nodes []string, uid int) error {
	files := containerFiles(nodes)
	for _, f := range files {
		path := filepath.Join(dir, f)
		if _, err := os.Lstat(path); err != nil {
			return fmt.Errorf("%w (make the keys with 'ksctl init --dir %s', the rest with 'comminit --dir %s')",
				err, filepath.Join(dir, "keys"), dir)
		}
	}
	for _, f := range files {
		path := filepath.Join(dir, f)
		if err := os.Lchown(path, uid, uid); err != nil {
			if errors.Is(err, fs.ErrPermission) {
				return fmt.Errorf("%w: handing files to another user needs root: sudo comminit --dir %s --owner %d", err, dir, uid)
			}
			return err
		}
		if err := os.Chmod(path, 0o600); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "handed %d files in %s to uid %d (mode 0600): %s\n", len(files), dir, uid, strings.Join(files, ", "))
	return nil
}
