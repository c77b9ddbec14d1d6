// Command commbench measures the Communicator on one machine and prints
// one table: each figure beside a bound measured in the same run, their
// ratio, the goal and whether it is met. See docs/BENCHMARKS.md.
//
// It starts its own stack in a temporary directory (embedded NATS with
// JetStream, a keyserver, a relay and a gateway on loopback), as
// commstack runs it. The idle-connections figure runs its clients in
// child processes (this binary again, with the hidden subcommand
// idle-clients) so that the gateway's memory is measured alone.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/commsec/communicator/internal/service"
)

const help = `commbench: measure the Communicator on this machine, each figure beside
its bound measured in the same run, and print one table.

Figures (names for --only):
  handshake  handshakes/s through the gateway, many concurrent TCP clients,
             beside the client + server handshake primitives run on all
             cores at once
  flood      a client's handshake p50 / p99 (one after the other) under
             2,000 connections that never finish M1 from 16 source
             addresses, beside the same client's handshakes alone; goal
             p99 ≤ 2 s
  sat2       accepted messages/s at saturation, groups of 2, 256-byte
             payloads, beside raw JetStream async publish; then the same
             load with the relay's check of the senders' signatures left
             out (sat2-nosig), beside sat2
  latency    latency send → delivery at half the sat2 rate, beside raw
             JetStream publish → consume at the same rate (runs sat2 too)
  sat8       delivered copies/s at saturation, groups of 8
  rekey      Keyserver.Rekey of 1,000 and 10,000 members, beside the
             members' bundle.Wraps on all cores at once, and beside
             storing that many bundles alone (raw atomic batches of 1,000)
  idle       idle connections held by the gateway (10k, 50k, 100k) and the
             gateway's memory per connection; clients in child processes
  coldstart  keyserver cold start from 1,000,000 events, beside a raw
             ordered consumer reading the same messages
  projmem    the memory of the event log's projection (every relay and
             gateway holds one) per client and per group membership:
             100,000 clients, 200,000 memberships

On a 3-node JetStream cluster in this process (R3 streams; a keyserver,
relays and gateways on different nodes; each figure on its own cluster):
  shards     accepted messages/s with K = 1 and with the default K shards
             of the accepted messages, the same load (200 clients, groups
             of 2, back to back); goal K/1 ≥ 1.8×; beside raw
             compare-and-swap publishes (200 writers) to 1 and to K
             streams
  ingress    2 gateways, each with half the clients in disjoint groups:
             each gateway's live messages received over all accepted;
             goal each ≤ 0.6
  storm      18,000 caught-up clients (fewer under a lower limit on open
             files) of a gateway that restarts: time until every client
             is connected and has a fresh message, and JetStream API
             calls per reconnection; goal ≤ 1
  fanout5k   5,000 clients in groups of 5 at 500 msgs/s: JetStream writes
             per accepted message (goal ≤ 1.1) and send → delivery p99
             beside raw R3 publish → consume p99 (goal ≤ 3×)
  failover   relay partition leases: time until a surviving relay owns
             every partition after another is killed (its leases not
             released, TTL 5 s), and until a joining relay holds its share

Progress goes to stderr; the table to stdout. The default run takes 10 to
15 minutes on 2 cores; --short (for CI) about two.

Usage:
  commbench [flags]

Examples:
  commbench
  commbench --short
  commbench --only handshake,idle --profile prof/

Exit status: 0 done (goals met or not); 1 error; 2 usage error.

Flags:
`

// figureNames are the figures in the order they run.
var figureNames = []string{"handshake", "flood", "sat2", "latency", "sat8", "rekey", "idle", "coldstart",
	"projmem", "shards", "ingress", "storm", "fanout5k", "failover"}

func main() {
	if len(os.Args) > 1 && os.Args[1] == childCommand {
		os.Exit(idleChildMain(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the flags, validated.
type options struct {
	short   bool
	only    map[string]bool
	sync    service.SyncPolicy
	dir     string
	profile string // directory for CPU and allocation profiles
	args    []string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "commbench: %v\nRun 'commbench --help' for usage.\n", err)
		return 2
	}
	if err := bench(ctx, o, stdout, stderr); err != nil {
		if errors.Is(err, context.Canceled) {
			err = errors.New("interrupted")
		}
		fmt.Fprintf(stderr, "commbench: %v\n", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{args: args}
	var only string
	fs := flag.NewFlagSet("commbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, help); fs.PrintDefaults() }
	fs.BoolVar(&o.short, "short", false, "a quick run for CI: small counts, short phases (figures not comparable)")
	fs.StringVar(&only, "only", "", "run only the figures `NAME[,NAME]` (see above)")
	fs.Var(&o.sync, "sync", "JetStream fsync: `always` (every write, the default of the stack) or an interval such as 1m")
	fs.StringVar(&o.dir, "dir", "", "parent `DIR` of the temporary data directories (default the system's)")
	fs.StringVar(&o.profile, "profile", "", "write CPU and allocation profiles of each figure to `DIR`")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return o, o.validate(only)
}

func (o *options) validate(only string) error {
	o.only = map[string]bool{}
	for _, name := range strings.Split(only, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "":
		case !slices.Contains(figureNames, name):
			return fmt.Errorf("--only: unknown figure %q (want some of %s)", name, strings.Join(figureNames, ","))
		default:
			o.only[name] = true
		}
	}
	if o.only["latency"] {
		o.only["sat2"] = true // latency runs at half the rate sat2 measures
	}
	return nil
}

// runs reports whether figure name is to run.
func (o *options) runs(name string) bool { return len(o.only) == 0 || o.only[name] }

// syncPolicy says in words how JetStream syncs.
func (o *options) syncPolicy() string {
	if o.sync == 0 {
		return "fsync always (before every acknowledgement)"
	}
	return fmt.Sprintf("fsync every %v", o.sync.Interval())
}
