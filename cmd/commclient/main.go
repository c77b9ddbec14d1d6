// Command commclient is the Communicator's client for a person at a
// terminal, and a reference for device integrators: it makes a client
// identity (keygen), then connects to a gateway with the client SDK to
// send a group message, listen for messages, or list the groups it is
// in. Run `commclient --help` for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/commsec/communicator/internal/syncwriter"
)

const helpHead = `commclient: a Communicator client at the command line.

A client is an identity (PREFIX.key, made by keygen) that an operator has
registered from its public file (PREFIX.pub) and added to groups. It talks
to a gateway over an authenticated channel; the keyserver sends it the key
of each group it is in, wrapped to it alone. Its state (group keys and
message counters) lives in a state file, PREFIX.state by default: keep it
with the key, and never let two running commclients share one.

Usage:
  commclient COMMAND [flags] [arguments]
  commclient COMMAND --help

Commands:
`

const helpTail = `
Connection flags of send, listen and groups (each also read from the
environment variable shown; a flag wins):
  --gateway HOST:PORT    the gateway [COMM_GATEWAY] (default 127.0.0.1:7400)
  --key FILE             this client's identity, PREFIX.key [COMM_CLIENT_KEY]
  --server-pub FILE      the gateway's public key, gateway.pub [COMM_SERVER_PUB]
  --keyserver-pub FILE   the keyserver's public key, keyserver.pub [COMM_KEYSERVER_PUB]
  --state FILE           the client's state [COMM_STATE] (default PREFIX.state)
  --timeout DUR          bound on connecting and on each wait (default 15s)

Example, against 'go run ./cmd/commstack' (its data/keys holds the .pub files):
  commclient keygen --out alice
  ksctl client register alice.pub --name alice    # the operator
  ksctl group add ops alice bob
  export COMM_SERVER_PUB=data/keys/gateway.pub COMM_KEYSERVER_PUB=data/keys/keyserver.pub
  commclient groups --key alice.key
  commclient send --key alice.key a28f7bddb5f508889ec3f39905e21330 hello bob
  commclient listen --key bob.key

Exit status: 0 done; 1 error (also a refused message); 2 usage error.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// app is one run of commclient: its environment and output.
type app struct {
	getenv         func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer
}

// run is the whole command with its environment injected for tests; it
// returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	// The SDK's log callback writes to stderr from its own goroutine
	// while the command's flow writes there too.
	stderr = syncwriter.New(stderr)
	a := &app{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		printHelp(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		printHelp(stdout)
		return 0
	}
	cmd := find(args[0])
	if cmd == nil {
		fmt.Fprintf(stderr, "commclient: unknown command %q\nRun 'commclient --help' for the commands.\n", args[0])
		return 2
	}
	return a.exitCode(a.dispatch(ctx, cmd, args[1:]))
}

func printHelp(w io.Writer) {
	fmt.Fprint(w, helpHead)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, helpTail)
}

// exitCode prints err and turns it into the exit status.
func (a *app) exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(a.stderr, "commclient %s: %s\nUsage: commclient %s %s\nRun 'commclient %s --help' for more.\n",
			ue.cmd.name, ue.msg, ue.cmd.name, ue.cmd.args, ue.cmd.name)
		return 2
	}
	fmt.Fprintf(a.stderr, "commclient: %s\n", strings.TrimPrefix(err.Error(), "commclient: "))
	return 1
}

// usageError is a command used wrongly: exit status 2.
type usageError struct {
	cmd *command
	msg string
}

func (e *usageError) Error() string { return e.msg }

// command is one subcommand. setup defines its flags on fs and returns
// the function that runs it with the positional arguments.
type command struct {
	name    string
	args    string // "[flags] GROUP MESSAGE..."
	summary string // one line for commclient --help
	help    string // what it does, for commclient COMMAND --help
	setup   func(fs *flag.FlagSet) func(ctx context.Context, a *app, args []string) error
}

func commands() []*command {
	return []*command{keygenCommand(), sendCommand(), listenCommand(), groupsCommand()}
}

func find(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

// dispatch parses the command's flags (anywhere among its arguments) and
// runs it.
func (a *app) dispatch(ctx context.Context, cmd *command, args []string) error {
	fs := flag.NewFlagSet("commclient "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	runCmd := cmd.setup(fs)
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printCommandHelp(a.stdout, cmd, fs)
		return nil
	}
	if err != nil {
		return &usageError{cmd, err.Error()}
	}
	return runCmd(ctx, a, pos)
}

// parseInterleaved parses flags given anywhere among the positional
// arguments; "--" ends the flags, and "-" is a positional argument.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

func printCommandHelp(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: commclient %s %s\n\n%s\n\nFlags:\n", c.name, c.args, strings.TrimSpace(c.help))
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		line := fmt.Sprintf("  --%s %s", f.Name, typ)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		if env := connEnv[f.Name]; env != "" {
			usage += " [" + env + "]"
		}
		fmt.Fprintf(w, "%-26s %s\n", line, usage)
	})
}

// want checks the number of positional arguments (max < 0: no maximum).
func want(c *command, args []string, min, max int) error {
	switch {
	case len(args) < min:
		return &usageError{c, "missing arguments"}
	case max >= 0 && len(args) > max:
		return &usageError{c, fmt.Sprintf("unexpected argument %q", args[max])}
	}
	return nil
}
