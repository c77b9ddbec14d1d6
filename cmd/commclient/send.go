package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/commsec/communicator/clientsdk"
	"github.com/commsec/communicator/protocol"
)

func sendCommand() *command {
	c := &command{name: "send", args: "[flags] GROUP MESSAGE...   (or GROUP - to read the message from stdin)",
		summary: "send a message to a group and wait for the relay's verdict",
		help: `Connects to the gateway, waits for the key of GROUP (the 32-hex-digit
group id that 'ksctl list' and 'commclient groups' show), seals the
message under it and sends it. Prints "accepted" once the relay has
stored the message for the group's members, or the reason it was not.

MESSAGE is the remaining arguments joined by spaces; "-" reads it from
stdin instead (a final newline is dropped). Put "--" before a message
that starts with "-". Messages that arrive for this client meanwhile are
printed on stderr: the client marks them as seen.

The state file keeps the send counter: never copy it between clients,
and give two commclients running at once each their own.`}
	c.setup = func(fs *flag.FlagSet) func(context.Context, *app, []string) error {
		var cf connFlags
		cf.register(fs)
		keyWait := fs.Duration("key-wait", 5*time.Second, "wait at most `DUR` for the group's key after connecting")
		return func(ctx context.Context, a *app, args []string) error {
			if err := want(c, args, 2, -1); err != nil {
				return err
			}
			if err := cf.complete(c, fs, a.getenv); err != nil {
				return err
			}
			g, err := protocol.ParseGroupID(args[0])
			if err != nil {
				return &usageError{c, fmt.Sprintf("GROUP %q: want the 32-hex-digit group id ('ksctl list' shows it; 'commclient groups' lists yours)", args[0])}
			}
			msg, err := readMessage(a.stdin, args[1:])
			if err != nil {
				return err
			}
			return send(ctx, a, &cf, g, msg, *keyWait)
		}
	}
	return c
}

// readMessage joins args, or reads stdin for "-".
func readMessage(stdin io.Reader, args []string) ([]byte, error) {
	var msg []byte
	if len(args) == 1 && args[0] == "-" {
		b, err := io.ReadAll(io.LimitReader(stdin, protocol.MaxPayload+2))
		if err != nil {
			return nil, fmt.Errorf("reading the message from stdin: %w", err)
		}
		msg = dropNewline(b)
	} else {
		msg = []byte(strings.Join(args, " "))
	}
	switch {
	case len(msg) == 0:
		return nil, errors.New("the message is empty")
	case len(msg) > protocol.MaxPayload:
		return nil, fmt.Errorf("the message is over %d bytes, the largest a group message carries", protocol.MaxPayload)
	}
	return msg, nil
}

// dropNewline drops one final "\n" or "\r\n".
func dropNewline(b []byte) []byte {
	if t, ok := bytes.CutSuffix(b, []byte("\r\n")); ok {
		return t
	}
	return bytes.TrimSuffix(b, []byte("\n"))
}

func send(ctx context.Context, a *app, cf *connFlags, g protocol.GroupID, msg []byte, keyWait time.Duration) error {
	s, err := cf.dial(ctx, a)
	if err != nil {
		return err
	}
	drained := drain(s, printer{w: a.stderr, prefix: "received meanwhile: "})
	defer func() { s.Close(); <-drained }()
	if err := waitKey(ctx, s, g, keyWait); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	if err := s.Send(sctx, g, msg); err != nil {
		return explainSend(err, g, cf.timeout)
	}
	fmt.Fprintln(a.stdout, "accepted")
	return nil
}

// drain prints the messages that arrive while the client does something
// else, until it is closed; the returned channel is closed then.
func drain(s *session, p printer) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range s.Messages() {
			p.print(m)
		}
	}()
	return done
}

// waitKey waits for the key of g, or explains why there is none: at once
// if the gateway has not listed g among the client's groups (dial waited
// for that list).
func waitKey(ctx context.Context, s *session, g protocol.GroupID, d time.Duration) error {
	groups := s.Groups()
	if !slices.Contains(groups, g) {
		return fmt.Errorf("not a member of %s; your groups: %s", g, groupList(groups))
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err := s.WaitKey(wctx, g)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the key of %s has not arrived within %v", g, d)
	}
	return err
}

func groupList(gs []protocol.GroupID) string {
	if len(gs) == 0 {
		return "none"
	}
	s := make([]string, len(gs))
	for i, g := range gs {
		s[i] = g.String()
	}
	return strings.Join(s, ", ")
}

func explainSend(err error, g protocol.GroupID, timeout time.Duration) error {
	switch {
	case errors.Is(err, clientsdk.ErrNotMember):
		return fmt.Errorf("refused: this client is not a member of %s", g)
	case errors.Is(err, clientsdk.ErrRevoked):
		return errors.New("refused: this client is revoked")
	case errors.Is(err, clientsdk.ErrNoGroup):
		return fmt.Errorf("refused: group %s does not exist, or was deleted", g)
	case errors.Is(err, clientsdk.ErrOldEpoch):
		return fmt.Errorf("refused: the message to %s was sealed under an epoch no longer accepted, and no newer key came", g)
	case errors.Is(err, clientsdk.ErrFutureEpoch):
		return fmt.Errorf("refused: the message to %s names an epoch that was never opened", g)
	case errors.Is(err, clientsdk.ErrRefused):
		return fmt.Errorf("refused: the relay did not accept the message to %s", g)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no verdict from the relay within %v: the message may or may not have been relayed", timeout)
	case errors.Is(err, context.Canceled):
		return errors.New("interrupted before the relay's verdict: the message may or may not have been relayed")
	}
	return fmt.Errorf("send: %w", err)
}
