package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
)

func listenCommand() *command {
	c := &command{name: "listen", args: "[flags] [--count N] [--for DUR] [--json]",
		summary: "print the messages of this client's groups as they arrive",
		help: `Connects to the gateway and prints every message of this client's groups,
one a line: the group id, the sender's short id, the epoch, the sender's
counter, and the payload as text if it is printable (else "hex:" and its
hex form). --json prints one JSON object a line instead, with the full
sender id, "hex" always and "text" when printable.

Messages stored while the client was away arrive first. Each message is
printed once: the state file remembers what was seen. Stops on Ctrl-C,
after --count messages or after --for; a message that had already
arrived then is printed too rather than lost.`}
	c.setup = func(fs *flag.FlagSet) func(context.Context, *app, []string) error {
		var cf connFlags
		cf.register(fs)
		count := fs.Int("count", 0, "stop after `N` messages (0: no limit)")
		dur := fs.Duration("for", 0, "stop after `DUR` (0: no limit)")
		asJSON := fs.Bool("json", false, "print one JSON object per message")
		return func(ctx context.Context, a *app, args []string) error {
			if err := want(c, args, 0, 0); err != nil {
				return err
			}
			if err := cf.complete(c, fs, a.getenv); err != nil {
				return err
			}
			if *count < 0 || *dur < 0 {
				return &usageError{c, "--count and --for must not be negative"}
			}
			if *dur > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, *dur)
				defer cancel()
			}
			return listen(ctx, a, &cf, *count, printer{w: a.stdout, json: *asJSON})
		}
	}
	return c
}

func listen(ctx context.Context, a *app, cf *connFlags, count int, p printer) error {
	s, err := cf.dial(ctx, a)
	if err != nil && errors.Is(ctx.Err(), context.Canceled) { // Ctrl-C while connecting: a stop, not a failure
		fmt.Fprintln(a.stderr, "stopped before the gateway was reached")
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "listening as client %s at %s; Ctrl-C stops\n", s.id.Short(), cf.gateway)
	err = receive(ctx, s, p, count)
	s.Close()
	for m := range s.Messages() { // already marked as seen: print rather than lose
		p.print(m)
	}
	return err
}

// receive prints messages until count (if positive) or ctx ends.
func receive(ctx context.Context, s *session, p printer, count int) error {
	for n := 0; count == 0 || n < count; n++ {
		select {
		case m, ok := <-s.Messages():
			if !ok {
				return errors.New("the client stopped")
			}
			p.print(m)
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}
