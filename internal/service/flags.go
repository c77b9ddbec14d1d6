package service

import (
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ApplyEnv gives every flag of fs that was not set on the command line
// (in fs, or in any of also, which may bind the same variables) the value
// of its environment variable in vars (flag name → variable), when that
// variable is set and not empty: a flag wins over its variable, the
// variable over the default.
func ApplyEnv(fs *flag.FlagSet, vars map[string]string, getenv func(string) string, also ...*flag.FlagSet) error {
	given := map[string]bool{}
	for _, s := range append([]*flag.FlagSet{fs}, also...) {
		s.Visit(func(f *flag.Flag) { given[f.Name] = true })
	}
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		v := getenv(vars[name])
		if given[name] || v == "" || fs.Lookup(name) == nil {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return fmt.Errorf("environment %s=%q (for --%s): %w", vars[name], v, name, err)
		}
	}
	return nil
}

// Duration is a time.Duration flag that also takes whole days: "7d",
// "1d12h", "90m".
type Duration time.Duration

// DurationVar defines a Duration flag.
func DurationVar(fs *flag.FlagSet, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	fs.Var((*Duration)(p), name, usage)
}

func (d *Duration) String() string {
	v := time.Duration(*d)
	if v > 0 && v%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(v/(24*time.Hour)), 10) + "d"
	}
	return v.String()
}

// Set parses a Go duration with an optional leading number of days.
func (d *Duration) Set(s string) error {
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ParseDuration parses "7d", "1d12h" or any time.ParseDuration string; it
// refuses negative durations.
func ParseDuration(s string) (time.Duration, error) {
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseUint(s[:i], 10, 16)
		if err != nil {
			return 0, fmt.Errorf("duration %q: bad number of days", s)
		}
		days, s = time.Duration(n)*24*time.Hour, s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: use e.g. 7d, 36h, 90m", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return days + v, nil
}

// Strings is a repeatable flag; each value may also list several items
// separated by commas.
type Strings []string

func (s *Strings) String() string { return strings.Join(*s, ",") }

// Set appends the comma-separated items of v.
func (s *Strings) Set(v string) error {
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*s = append(*s, item)
		}
	}
	return nil
}

// SyncPolicy is a --sync flag: JetStream's fsync policy, "always" (0, an
// fsync before every acknowledgement) or a positive interval.
type SyncPolicy time.Duration

func (p *SyncPolicy) String() string {
	if *p == 0 {
		return "always"
	}
	return time.Duration(*p).String()
}

// Set parses "always" or a positive interval such as 1s or 2m.
func (p *SyncPolicy) Set(v string) error {
	if v == "always" {
		*p = 0
		return nil
	}
	d, err := ParseDuration(v)
	if err != nil || d <= 0 {
		return fmt.Errorf("want always or a positive interval such as 1s or 2m, not %q", v)
	}
	*p = SyncPolicy(d)
	return nil
}

// Interval is the fsync interval; 0 means always.
func (p SyncPolicy) Interval() time.Duration { return time.Duration(p) }
