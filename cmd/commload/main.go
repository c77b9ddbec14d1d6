// Command commload measures the Communicator's message path on one
// machine. It starts its own stack in a temporary directory (embedded
// NATS with JetStream, a keyserver, a relay and a gateway on loopback),
// registers N clients, puts them in G groups, connects them through the
// gateway over real TCP with the client SDK, and drives group messages for
// a while: every send waits for the relay's verdict, every other member
// records the end-to-end latency. Then, on the same NATS server, it
// measures raw JetStream with the same payload size, for reference.
// Run `commload --help` for the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/commsec/communicator/internal/loadgen"
	"github.com/commsec/communicator/internal/service"
)

const help = `commload: load-test the Communicator on this machine.

It starts a one-machine stack in a temporary directory (embedded NATS
with JetStream and a loopback listener, a keyserver, one relay, one
gateway), registers --clients clients, spreads them over --groups groups,
connects them to the gateway over TCP with the client SDK, then every
client sends for --warmup and --duration: each Send waits for the relay's
verdict; each delivery at another member records the latency from the
send (a timestamp in the payload's first 8 bytes). Afterwards, on the
same server and with the same payload size, it measures raw JetStream:
the async-publish rate, the publish→consume latency at --raw-rate, and
the relay's storage pattern alone (one synchronous publish that
compares-and-swaps the last sequence of its own subject, one worker per
client).

Progress goes to stderr, a line per second; the table goes to stdout.

Usage:
  commload [flags]

Examples:
  commload --clients 200 --groups 100 --duration 20s --sync always
  commload --sync 1m --cpuprofile load.prof && go tool pprof -top load.prof
  commload --rate 1000      # latency at a moderate rate
  commload --short          # a few seconds, for CI

Exit status: 0 done; 1 error; 2 usage error.

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the flags, validated.
type options struct {
	clients, groups int
	rate            float64 // total messages/s; 0 saturates
	duration        time.Duration
	warmup          time.Duration
	size            int
	sync            service.SyncPolicy
	rawDuration     time.Duration // each raw JetStream phase
	rawRate         float64       // raw publish→consume latency phase
	dir             string
	cpuprofile      string
	short           bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "commload: %v\nRun 'commload --help' for usage.\n", err)
		return 2
	}
	if err := load(ctx, o, stdout, stderr); err != nil {
		if errors.Is(err, context.Canceled) {
			err = errors.New("interrupted")
		}
		fmt.Fprintf(stderr, "commload: %v\n", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("commload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, help); fs.PrintDefaults() }
	fs.IntVar(&o.clients, "clients", 200, "number of clients `N`")
	fs.IntVar(&o.groups, "groups", 100, "number of groups `G`; each has N/G ≥ 2 members")
	fs.Float64Var(&o.rate, "rate", 0, "total messages per second `R` over all senders; 0 saturates")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "measured load `D`")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "load `D` before the measurement (not counted)")
	fs.IntVar(&o.size, "size", 256, "payload `BYTES` (at least 8: the send timestamp)")
	fs.Var(&o.sync, "sync", "JetStream fsync: `always` (every write) or an interval such as 1m")
	fs.DurationVar(&o.rawDuration, "raw-duration", 5*time.Second, "length `DUR` of each raw JetStream phase")
	fs.Float64Var(&o.rawRate, "raw-rate", 1000, "messages/s `R` of the raw publish→consume latency phase")
	fs.StringVar(&o.dir, "dir", "", "parent `DIR` of the temporary data directory (default the system's)")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the load phase to `FILE`")
	fs.BoolVar(&o.short, "short", false, "a quick run for CI: 8 clients, 4 groups, 3 s, short raw phases")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.short {
		o.applyShort(fs)
	}
	return o, o.validate()
}

// applyShort sets the short mode's values for the flags not given.
func (o *options) applyShort(fs *flag.FlagSet) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	set := func(name string, apply func()) {
		if !given[name] {
			apply()
		}
	}
	set("clients", func() { o.clients = 8 })
	set("groups", func() { o.groups = 4 })
	set("duration", func() { o.duration = 3 * time.Second })
	set("warmup", func() { o.warmup = 500 * time.Millisecond })
	set("raw-duration", func() { o.rawDuration = time.Second })
	set("raw-rate", func() { o.rawRate = 200 })
}

func (o *options) validate() error {
	switch {
	case o.groups < 1:
		return errors.New("--groups must be at least 1")
	case o.clients < 2*o.groups:
		return fmt.Errorf("--clients %d over --groups %d: each group needs at least 2 members", o.clients, o.groups)
	case o.rate < 0 || o.rawRate <= 0:
		return errors.New("--rate must not be negative, --raw-rate must be positive")
	case o.duration <= 0 || o.warmup < 0 || o.rawDuration <= 0:
		return errors.New("--duration and --raw-duration must be positive, --warmup not negative")
	case o.size < loadgen.StampSize || o.size > loadgen.MaxPayload:
		return fmt.Errorf("--size must be between %d and %d bytes", loadgen.StampSize, loadgen.MaxPayload)
	}
	return nil
}

// syncPolicy says in words how JetStream syncs.
func (o *options) syncPolicy() string {
	if o.sync == 0 {
		return "always (fsync before every acknowledgement)"
	}
	return fmt.Sprintf("every %v (acknowledged writes may be lost on a crash)", o.sync.Interval())
}
