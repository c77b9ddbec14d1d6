package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/commsec/communicator/internal/service"
	"github.com/commsec/communicator/keyserver/admin"
	"github.com/commsec/communicator/protocol/keys"
)

// command is one subcommand. setup defines its own flags on fs and
// returns the function that runs it with the positional arguments.
type command struct {
	name    string // "group add"
	args    string // "GROUP CLIENT... [--reason TEXT]"
	summary string // one line for ksctl --help
	help    string // what it does, for ksctl COMMAND --help
	setup   func(fs *flag.FlagSet) func(ctx context.Context, a *app, args []string) error
}

func commands() []*command {
	return []*command{
		initCommand(),
		registerCommand(), revokeCommand(),
		createCommand(), addCommand(), removeCommand(), rekeyCommand(), deleteCommand(),
		listCommand(), auditCommand(),
	}
}

// app is one run of ksctl: its flags, output and NATS connection.
type app struct {
	g              globals
	stdout, stderr io.Writer
	getenv         func(string) string
	tty            bool // stderr is a terminal
	nc             *nats.Conn
	async          asyncErrors // what NATS reports outside of a request
}

// dispatch finds the command named by args (one or two words), parses
// its flags (the global ones too) and runs it.
func (a *app) dispatch(ctx context.Context, top *flag.FlagSet, args []string) error {
	cmd, rest := find(args)
	if cmd == nil {
		return a.unknown(args)
	}
	fs := flag.NewFlagSet("ksctl "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a.g.register(fs)
	runCmd := cmd.setup(fs)
	pos, err := parseInterleaved(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		printCommandHelp(a.stdout, cmd, fs)
		return nil
	}
	if err == nil {
		err = service.ApplyEnv(fs, globalEnv, a.getenv, top)
	}
	if err != nil {
		return &usageError{cmd, err.Error()}
	}
	ctx, a.async.abort = context.WithCancelCause(ctx)
	defer a.async.abort(nil)
	return a.async.explain(ctx, runCmd(ctx, a, pos))
}

func find(args []string) (*command, []string) {
	for _, c := range commands() {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			return c, args[len(words):]
		}
	}
	return nil, nil
}

// unknown answers a command that does not exist: "ksctl group" lists the
// group commands, "ksctl help" is ksctl --help.
func (a *app) unknown(args []string) error {
	if args[0] == "help" {
		printHelp(a.stdout)
		return nil
	}
	var near []string
	for _, c := range commands() {
		if strings.HasPrefix(c.name, args[0]+" ") {
			near = append(near, fmt.Sprintf("  ksctl %-16s %s", c.name, c.summary))
		}
	}
	asked := len(args) > 1 && (args[1] == "-h" || args[1] == "--help" || args[1] == "-help")
	switch {
	case len(near) > 0 && asked:
		fmt.Fprintf(a.stdout, "ksctl %s commands:\n%s\n", args[0], strings.Join(near, "\n"))
		return nil
	case len(near) > 0:
		fmt.Fprintf(a.stderr, "ksctl %s: which one?\n%s\n", args[0], strings.Join(near, "\n"))
		return &exitError{2}
	}
	fmt.Fprintf(a.stderr, "ksctl: unknown command %q\nRun 'ksctl --help' for the commands.\n", args[0])
	return &exitError{2}
}

// parseInterleaved parses flags given anywhere among the positional
// arguments (`group remove ops carol --reason "left"`); "--" ends the
// flags.
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
	fmt.Fprintf(w, "Usage: ksctl %s %s\n\n%s\n", c.name, c.args, strings.TrimSpace(c.help))
	var own []string
	fs.VisitAll(func(f *flag.Flag) {
		if isGlobal[f.Name] {
			return
		}
		typ, usage := flag.UnquoteUsage(f)
		line := fmt.Sprintf("  --%s %s", f.Name, typ)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		if env := globalEnv[f.Name]; env != "" {
			usage += " [" + env + "]"
		}
		own = append(own, fmt.Sprintf("%-24s %s", line, usage))
	})
	if len(own) > 0 {
		fmt.Fprintf(w, "\nFlags:\n%s\n", strings.Join(own, "\n"))
	}
	fmt.Fprint(w, "\nGlobal flags: --nats URL, --nats-creds FILE, --nats-ca FILE, --operator-key FILE, --timeout DUR (see ksctl --help).\n")
}

// connect opens the NATS connection (once) for the admin API.
func (a *app) connect() (*nats.Conn, error) { return a.connectAs("ksctl") }

// connectAs opens the NATS connection (once) under a connection name that
// also picks its role's reply inbox (see service.NATSClient.Options). The
// servers of --nats are tried in the order given.
func (a *app) connectAs(name string) (*nats.Conn, error) {
	if a.nc != nil {
		return a.nc, nil
	}
	if err := service.CheckNATSURL(a.g.natsURL); err != nil {
		return nil, fmt.Errorf("--nats: %w", err)
	}
	opts, err := service.NATSClient{Creds: a.g.natsCreds, CA: a.g.natsCA}.Options(name)
	if err != nil {
		return nil, err
	}
	a.async.creds, a.async.role = a.g.natsCreds, roleOf(name)
	opts = append(opts, nats.Timeout(a.g.timeout), nats.DontRandomize(), nats.ErrorHandler(a.async.handle))
	nc, err := nats.Connect(a.g.natsURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to NATS at %s: %w%s", a.g.natsURL, err, connectHint(a.g, roleOf(name), err))
	}
	a.nc = nc
	return nc, nil
}

func (a *app) close() {
	if a.nc != nil {
		a.nc.Close()
	}
}

// do signs and sends one admin request and waits for the keyserver.
func (a *app) do(ctx context.Context, op string, args admin.Args) (*admin.Reply, error) {
	data, err := keys.ReadFile(a.g.operatorKey)
	if err != nil {
		return nil, fmt.Errorf("--operator-key: %w (create one with 'ksctl init', or give --operator-key or COMM_OPERATOR_KEY)", err)
	}
	defer clear(data)
	key, err := keys.DecodeSigningKey(data, keys.KindOperatorPrivate)
	if err != nil {
		return nil, fmt.Errorf("--operator-key %s: %w", a.g.operatorKey, err)
	}
	defer key.Wipe()
	nc, err := a.connect()
	if err != nil {
		return nil, err
	}
	c := &admin.Client{NC: nc, Operator: key, Timeout: a.g.timeout, Retrying: a.retrying}
	r, err := c.Do(ctx, op, args)
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("no answer from the keyserver within %v (--timeout), %d attempts; the request may have run: check with 'ksctl list'", a.g.timeout, admin.DefaultAttempts)
	}
	if r != nil && r.Note() != "" {
		fmt.Fprintf(a.stderr, "ksctl: %s\n", r.Note())
	}
	return r, err
}

// retrying tells the operator that a request is sent again.
func (a *app) retrying(attempt, attempts int, cause error) {
	why := fmt.Sprintf("no answer from the keyserver within %v", a.g.timeout)
	if errors.Is(cause, nats.ErrNoResponders) {
		why = "no keyserver answers"
	}
	fmt.Fprintf(a.stderr, "ksctl: %s; sending the same signed request again (attempt %d of %d)\n", why, attempt, attempts)
}

// want checks the number of positional arguments.
func want(c *command, args []string, min, max int) error {
	switch {
	case len(args) < min:
		return &usageError{c, "missing arguments"}
	case max >= 0 && len(args) > max:
		return &usageError{c, fmt.Sprintf("unexpected argument %q", args[max])}
	}
	return nil
}
