package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/commsec/communicator/internal/atomicfile"
	"github.com/commsec/communicator/protocol/keys"
)

func keygenCommand() *command {
	c := &command{name: "keygen", args: "--out PREFIX [--force]",
		summary: "make a client identity: PREFIX.key and PREFIX.pub",
		help: `Makes a new client identity: an Ed25519 signature key (its public half is
the client's id) and an X25519 key-wrap key (the keyserver wraps group
keys to it). Writes PREFIX.key, the private identity (mode 0600: keep it
on the device), and PREFIX.pub, the public file an operator registers:

  ksctl client register PREFIX.pub --name NAME

Prints the client id. Refuses to overwrite existing files unless --force
is given: a replaced key is a new client, unknown to the keyserver.`}
	c.setup = func(fs *flag.FlagSet) func(context.Context, *app, []string) error {
		out := fs.String("out", "", "write `PREFIX`.key and PREFIX.pub (required)")
		force := fs.Bool("force", false, "overwrite existing key files")
		return func(_ context.Context, a *app, args []string) error {
			if err := want(c, args, 0, 0); err != nil {
				return err
			}
			if *out == "" {
				return &usageError{c, "--out PREFIX is required"}
			}
			return keygen(a.stdout, *out, *force)
		}
	}
	return c
}

func keygen(w io.Writer, prefix string, force bool) error {
	keyPath, pubPath := prefix+".key", prefix+".pub"
	if !force {
		if err := refuseExisting(keyPath, pubPath); err != nil {
			return err
		}
	}
	id, err := keys.GenerateClientIdentity(nil)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	defer id.Sig.Wipe()
	defer id.Wrap.Wipe()
	priv := keys.EncodeClientIdentity(id)
	defer clear(priv)
	if err := keys.WriteFile(keyPath, priv, force); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	if err := atomicfile.Write(pubPath, keys.EncodeClientPublic(id.Public()), 0o644); err != nil {
		return fmt.Errorf("keygen: %s: %w", pubPath, err)
	}
	fmt.Fprintf(w, "client id %s\n", id.ID())
	fmt.Fprintf(w, "wrote %s  the client's identity (private, mode 0600): keep it on the device\n", keyPath)
	fmt.Fprintf(w, "wrote %s  its public file, for the operator:\n", pubPath)
	fmt.Fprintf(w, "  ksctl client register %s --name NAME\n", pubPath)
	return nil
}

func refuseExisting(paths ...string) error {
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("keygen: %s exists; refusing to overwrite a key (--force replaces it: the new key is a new client, to be registered again)", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("keygen: %w", err)
		}
	}
	return nil
}
