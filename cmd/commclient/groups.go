package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"time"
)

func groupsCommand() *command {
	c := &command{name: "groups", args: "[flags] [--wait DUR]",
		summary: "list the groups this client holds keys for",
		help: `Connects to the gateway, receives this client's key bundles (waiting
until none has come for a second, at most --wait), and prints each group
it holds a key for with the newest epoch, one a line. The group id is
what 'commclient send' takes. Messages that arrive meanwhile are printed
on stderr: the client marks them as seen.`}
	c.setup = func(fs *flag.FlagSet) func(context.Context, *app, []string) error {
		var cf connFlags
		cf.register(fs)
		wait := fs.Duration("wait", 5*time.Second, "wait at most `DUR` for the key bundles")
		return func(ctx context.Context, a *app, args []string) error {
			if err := want(c, args, 0, 0); err != nil {
				return err
			}
			if err := cf.complete(c, fs, a.getenv); err != nil {
				return err
			}
			return groups(ctx, a, &cf, *wait)
		}
	}
	return c
}

func groups(ctx context.Context, a *app, cf *connFlags, wait time.Duration) error {
	s, err := cf.dial(ctx, a)
	if err != nil {
		return err
	}
	drained := drain(s, printer{w: a.stderr, prefix: "received meanwhile: "})
	defer func() { s.Close(); <-drained }()
	settle(ctx, s, wait, time.Second)
	list := s.Groups()
	if len(list) == 0 {
		fmt.Fprintln(a.stdout, "no group keys: this client is in no group yet (an operator adds it with 'ksctl group add GROUP NAME')")
		return ctx.Err()
	}
	for _, g := range list {
		fmt.Fprintf(a.stdout, "%s  epoch %d\n", g, s.Epoch(g))
	}
	return ctx.Err()
}

// settle waits until the client's keys have not changed for quiet, at
// most wait.
func settle(ctx context.Context, s *session, wait, quiet time.Duration) {
	deadline := time.Now().Add(wait)
	last, since := keyView(s), time.Now()
	for time.Now().Before(deadline) && time.Since(since) < quiet {
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
		if v := keyView(s); !slices.Equal(v, last) {
			last, since = v, time.Now()
		}
	}
}

// keyView is what the client holds: each group with its newest epoch.
func keyView(s *session) []string {
	var v []string
	for _, g := range s.Groups() {
		v = append(v, fmt.Sprint(g, s.Epoch(g)))
	}
	return v
}
