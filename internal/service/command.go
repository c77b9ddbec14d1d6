package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

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

// Command is a service binary: its name, its help text, how it reads its
// flags and environment, and how it serves.
type Command[C Parsed] struct {
	Name  string
	Help  string
	Parse func(args []string, getenv func(string) string) (C, error)
	Serve func(ctx context.Context, cfg C, log zerolog.Logger) error
}

// Run parses the command line, starts the logger and serves until ctx
// ends. It returns the exit status: 0 after a clean stop (or a stop
// before the service was ready) and after --help, 1 when serving fails,
// 2 on a usage error.
func (c Command[C]) Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
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
