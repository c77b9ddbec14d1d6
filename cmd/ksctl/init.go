package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/commsec/communicator/internal/atomicfile"
	"github.com/commsec/communicator/protocol/keys"
)

// keyPair is one key pair that init makes.
type keyPair struct {
	base      string // file name without .key/.pub
	priv, pub keys.Kind
	privNote  string
	pubNote   string
}

var initPairs = []keyPair{
	{"operator", keys.KindOperatorPrivate, keys.KindOperatorPublic,
		"signs your admin requests: keep it with the operator", "for the keyserver's --operator list"},
	{"keyserver", keys.KindKeyserverPrivate, keys.KindKeyserverPublic,
		"the keyserver's Sk_Ks (--key): keep it on the keyserver only", "verifies events and key bundles (audit, gateways, clients)"},
	{"gateway", keys.KindServerPrivate, keys.KindServerPublic,
		"the gateways' Sk_S: keep it on the gateways only", "Pk_S, the server key clients pin"},
}

func initCommand() *command {
	c := &command{name: "init", args: "[--dir DIR] [--force]",
		summary: "create the operator, keyserver and gateway key pairs",
		help: `Creates three Ed25519 key pairs in DIR: operator.key/.pub (your admin key),
keyserver.key/.pub (the keyserver's signing key) and gateway.key/.pub (the
gateways' server key). Private keys are written with mode 0600, public
keys 0644. It refuses to overwrite any of them unless --force is given:
replacing a key breaks everything that trusts the old one.`}
	c.setup = func(fs *flag.FlagSet) func(context.Context, *app, []string) error {
		dir := fs.String("dir", ".", "the `DIR` to create the key files in")
		force := fs.Bool("force", false, "overwrite existing key files")
		return func(_ context.Context, a *app, args []string) error {
			if err := want(c, args, 0, 0); err != nil {
				return err
			}
			return runInit(a.stdout, *dir, *force)
		}
	}
	return c
}

func runInit(w io.Writer, dir string, force bool) error {
	if !force {
		if err := refuseExisting(dir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	pubs := make([][32]byte, len(initPairs))
	fmt.Fprintf(w, "Created in %s:\n", dir)
	for i, p := range initPairs {
		pub, err := makePair(dir, p, force)
		if err != nil {
			return err
		}
		pubs[i] = pub
		fmt.Fprintf(w, "  %-14s private  %s\n  %-14s public   %s\n", p.base+".key", p.privNote, p.base+".pub", p.pubNote)
	}
	fmt.Fprintln(w, "\nPublic keys:")
	for i, p := range initPairs {
		fmt.Fprintf(w, "  %-10s %s\n", p.base, hex.EncodeToString(pubs[i][:]))
	}
	printNextSteps(w, dir)
	return nil
}

func refuseExisting(dir string) error {
	for _, p := range initPairs {
		for _, name := range []string{p.base + ".key", p.base + ".pub"} {
			path := filepath.Join(dir, name)
			if _, err := os.Lstat(path); err == nil {
				return fmt.Errorf("init: %s exists; refusing to overwrite keys (--force replaces them, and breaks everything that trusts the old ones)", path)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("init: %w", err)
			}
		}
	}
	return nil
}

// makePair generates one key pair and writes its two files.
func makePair(dir string, p keyPair, force bool) ([32]byte, error) {
	k, err := keys.GenerateSigningKey(nil)
	if err != nil {
		return [32]byte{}, fmt.Errorf("init: %w", err)
	}
	defer k.Wipe()
	priv := keys.EncodeSigningKey(p.priv, k)
	defer clear(priv)
	if err := keys.WriteFile(filepath.Join(dir, p.base+".key"), priv, force); err != nil {
		return [32]byte{}, fmt.Errorf("init: %w", err)
	}
	pub := k.Public()
	if err := atomicfile.Write(filepath.Join(dir, p.base+".pub"), keys.EncodePublicKey(p.pub, pub), 0o644); err != nil {
		return [32]byte{}, fmt.Errorf("init: %w", err)
	}
	return pub, nil
}

func printNextSteps(w io.Writer, dir string) {
	key := func(name string) string { return filepath.Join(dir, name) }
	fmt.Fprintf(w, `
Next steps:
  1. Start the keyserver against your NATS server:
       keyserver --nats nats://127.0.0.1:4222 --key %s --operator %s
  2. Register clients from their public key files and make a group:
       export COMM_OPERATOR_KEY=%s
       ksctl client register alice.pub --name alice
       ksctl group create ops
       ksctl group add ops alice
  3. Give %s to the gateways and %s to whoever audits:
       ksctl audit ops --keyserver-pub %s
`, key("keyserver.key"), key("operator.pub"), key("operator.key"), key("gateway.key"), key("keyserver.pub"), key("keyserver.pub"))
}
