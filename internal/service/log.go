package service

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// NewLogger returns a zerolog logger writing to w at level ("" means
// info) in format: "json", "console" (human-readable), or "" for console
// when w is a terminal and JSON otherwise.
func NewLogger(w io.Writer, level, format string) (zerolog.Logger, error) {
	lvl := zerolog.InfoLevel
	if level != "" {
		var err error
		if lvl, err = zerolog.ParseLevel(level); err != nil {
			return zerolog.Logger{}, fmt.Errorf("log level %q: use trace, debug, info, warn or error", level)
		}
	}
	if format == "" {
		format = "json"
		if IsTerminal(w) {
			format = "console"
		}
	}
	switch format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339, NoColor: !IsTerminal(w)}
	default:
		return zerolog.Logger{}, fmt.Errorf("log format %q: use json or console", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// IsTerminal reports whether w is a character device (a terminal; also
// /dev/null, which does no harm).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
