package main

import (
	"context"
	"flag"
	"fmt"
	"time"
)

func groupsCommand() *command {
	c := &command{name: "groups", args: "[flags] [--wait DUR]",
		summary: "list the groups this client is in",
		help: `Connects to the gateway, receives this client's key bundles and the list
of its groups (at most --wait), and prints each group it is in with the
newest epoch it holds a key for, one a line. The group id is what
'commclient send' takes. A group the client was removed from is not
listed, although its state keeps the old keys. Messages that arrive
meanwhile are printed on stderr: the client marks them as seen.`}
	c.setup = func(fs *flag.FlagSet) func(context.Context, *app, []string) error {
		var cf connFlags
		cf.register(fs)
		wait := fs.Duration("wait", 5*time.Second, "wait at most `DUR` for the key bundles and the groups")
		return func(ctx context.Context, a *app, args []string) error {
			if err := want(c, args, 0, 0); err != nil {
				return err
			}
			if err := cf.complete(c, fs, a.getenv); err != nil {
				return err
			}
			if *wait <= 0 {
				return &usageError{c, "--wait must be positive"}
			}
			cf.syncWait = *wait
			return groups(ctx, a, &cf)
		}
	}
	return c
}

// groups prints the client's groups as the gateway told them, once the
// bundles it pushed at connect are installed (dial waits for both).
func groups(ctx context.Context, a *app, cf *connFlags) error {
	s, err := cf.dial(ctx, a)
	if err != nil {
		return err
	}
	drained := drain(s, printer{w: a.stderr, prefix: "received meanwhile: "})
	defer func() { s.Close(); <-drained }()
	list := s.Groups()
	if len(list) == 0 {
		fmt.Fprintln(a.stdout, "this client is in no group (an operator adds it with 'ksctl group add GROUP NAME')")
		return ctx.Err()
	}
	for _, g := range list {
		fmt.Fprintf(a.stdout, "%s  epoch %d\n", g, s.Epoch(g))
	}
	return ctx.Err()
}
