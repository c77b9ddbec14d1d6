package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"
)

// Logging is the log settings every service binary takes.
type Logging struct {
	Level, Format string
}

// Flags registers --log-level and --log-format on fs.
func (l *Logging) Flags(fs *flag.FlagSet) {
	fs.StringVar(&l.Level, "log-level", "info", "log level")
	fs.StringVar(&l.Format, "log-format", "", "log format: json or console")
}

// LogSettings returns l; a config that embeds Logging has it.
func (l Logging) LogSettings() Logging { return l }

// Parsed is a service binary's parsed command line.
type Parsed interface{ LogSettings() Logging }

// Command is a service binary: its name, its help text, the default
// address of its HTTP endpoints, how it reads its flags and environment,
// and how it serves.
type Command[C Parsed] struct {
	Name  string
	Help  string
	HTTP  string
	Parse func(args []string, getenv func(string) string) (C, error)
	Serve func(ctx context.Context, cfg C, log zerolog.Logger) error
}

// Run runs `NAME health ...` (see Health), or parses the command line,
// starts the logger and serves until ctx ends. It returns the exit
// status: 0 after a clean stop (or a stop before the service was ready)
// and after --help, 1 when serving fails, 2 on a usage error.
func (c Command[C]) Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "health" {
		return c.Health(ctx, args[1:], getenv, stdout, stderr)
	}
	cfg, err := c.Parse(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, c.Help)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", c.Name, err, c.Name)
		return 2
	}
	settings := cfg.LogSettings()
	log, err := NewLogger(stderr, settings.Level, settings.Format)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.Name, err)
		return 2
	}
	err = c.Serve(ctx, cfg, log)
	switch {
	case err != nil && ctx.Err() == nil:
		log.Error().Err(err).Msg(c.Name + " stopped")
		return 1
	case err != nil:
		log.Info().Err(err).Msg("stopped before it was ready")
	default:
		log.Info().Msg("stopped cleanly")
	}
	return 0
}

// Health is the `NAME health` subcommand: GET /readyz of a running
// service at --http (default c.HTTP, or COMM_HTTP), each try within
// --timeout; with --wait DUR it tries again every pollEvery until the
// service is ready or DUR has passed, for scripts that start a service
// and go on once it is ready. It prints "ready" and returns 0, or says
// why not and returns 1; 2 on a usage error.
func (c Command[C]) Health(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(c.Name+" health", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("http", c.HTTP, "HTTP address of the "+c.Name)
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for an answer")
	wait := fs.Duration("wait", 0, "keep trying until ready for this long")
	err := fs.Parse(args)
	if err == nil {
		err = ApplyEnv(fs, map[string]string{"http": "COMM_HTTP"}, getenv)
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, c.Help)
		return 0
	}
	switch {
	case err != nil:
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case *timeout <= 0:
		err = fmt.Errorf("--timeout %v: want a positive duration", *timeout)
	case *wait < 0:
		err = fmt.Errorf("--wait %v: want a positive duration, or 0 for one try", *wait)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s health: %v\nUsage: %s health [--http ADDR] [--timeout DUR] [--wait DUR]\n", c.Name, err, c.Name)
		return 2
	}
	if err := waitReady(ctx, *addr, *timeout, *wait); err != nil {
		fmt.Fprintf(stderr, "%s health: %v\n", c.Name, err)
		return 1
	}
	fmt.Fprintln(stdout, "ready")
	return 0
}

// pollEvery is how often `health --wait` asks again.
const pollEvery = 200 * time.Millisecond

// waitReady probes /readyz at addr, each try within timeout, until it
// answers 200 or wait has passed (one try if wait is 0).
func waitReady(ctx context.Context, addr string, timeout, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := Probe(pctx, addr, "/readyz")
		cancel()
		if err == nil {
			return nil
		}
		if wait == 0 {
			return err
		}
		if !time.Now().Add(pollEvery).Before(deadline) {
			return fmt.Errorf("not ready after %v: %w", wait, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up: %v)", err, ctx.Err())
		case <-time.After(pollEvery):
		}
	}
}
