// Command commstack runs the whole Communicator on one machine, in one
// process (package internal/stack): an embedded NATS server with
// JetStream, the keyserver, a relay and a gateway, on a data directory
// that holds the keys and the event log.
//
//	commstack [flags]            run the stack until SIGINT or SIGTERM
//	commstack demo [--data DIR]  start it, run three clients through it, print each step
//	commstack health             exit 0 if a running stack is ready
//
// Run `commstack --help` for the flags.
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

	"github.com/commsec/communicator/internal/service"
	"github.com/commsec/communicator/internal/stack"
	"github.com/commsec/communicator/streams"
)

const help = `commstack: the whole Communicator on one machine, in one process.

It runs an embedded NATS server with JetStream, the keyserver (with the
admin API that ksctl talks to), a relay and a gateway, on a data
directory. The first run creates the key pairs in DATA/keys, as
'ksctl init' would, and the NATS users (one nkey seed per role) in
DATA/creds; later runs reuse them.

Usage:
  commstack [flags]
      run the stack until SIGINT or SIGTERM
  commstack demo [--data DIR] [--log-level LEVEL] [--log-format FMT]
      start the stack, register alice, bob and carol, make group ops,
      connect three clients over TCP, exchange messages, remove carol and
      show that she can then neither send nor read; print each step and
      exit 0 if every expectation held, 1 if not. Without --data it uses
      a fresh temporary directory and removes it afterwards; with it, the
      event log stays for 'ksctl audit'. Its stack logs only warnings
      unless --log-level says otherwise; ports are picked freely.
  commstack health [--http ADDR] [--timeout DUR] [--wait DUR]
      exit 0 if the stack listening on ADDR is ready, 1 if not;
      --wait DUR asks again until it is ready or DUR has passed

Flags of the stack (each also read from the environment variable shown;
a flag wins):
  --data DIR          data directory [COMM_DATA] (default ./data):
                        DIR/keys/operator.key, .pub   your admin key pair (for ksctl)
                        DIR/keys/keyserver.key, .pub  Sk_Ks; Pk_Ks for clients and audits
                        DIR/keys/gateway.key, .pub    Sk_S; Pk_S, the key clients pin
                        DIR/creds/<role>.nk           NATS users: admin.nk for ksctl,
                                                      auditor.nk for ksctl audit
                        DIR/nats/                     JetStream: event log, bundles, messages
  --gateway ADDR      TCP address for clients [COMM_GATEWAY]
                      (default 127.0.0.1:7400, this machine only; use
                      0.0.0.0:7400 to accept clients on every interface)
  --nats-listen ADDR  loopback address of the embedded NATS server, for
                      ksctl and the nats CLI; only a loopback address is
                      accepted, and every connection authenticates with
                      one of DIR/creds/*.nk; "" or none for no listener
                      [COMM_NATS_LISTEN] (default 127.0.0.1:4222)
  --http ADDR         HTTP listener for /metrics (keyserver, relay and
                      gateway), /healthz and /readyz [COMM_HTTP]
                      (default 127.0.0.1:9100)
  --sync POLICY       when JetStream fsyncs: always (every write, before it
                      is acknowledged) or an interval such as 1s; an
                      interval is faster but a crash loses acknowledged
                      writes [COMM_SYNC] (default always)
  --accepted-shards K the number of streams the accepted messages are
                      sharded over: 1, 2, 4, 8 or 16 [COMM_ACCEPTED_SHARDS]
                      (default 0: the data directory's, or 4 for a new
                      one). K is fixed when the streams are created: a
                      different K on existing data refuses to start
                      (docs/SCALING.md, "Changing the number of shards")
  --log-level LEVEL   trace, debug, info, warn or error [COMM_LOG_LEVEL]
                      (default info)
  --log-format FMT    json or console [COMM_LOG_FORMAT]
                      (default console on a terminal, json otherwise)
  -h, --help          this help

Examples:
  go run ./cmd/commstack demo
  commstack --data /var/lib/comm
  ksctl --nats-creds data/creds/admin.nk --operator-key data/keys/operator.key list
  ksctl audit ops --nats-creds data/creds/auditor.nk --keyserver-pub data/keys/keyserver.pub

SIGINT or SIGTERM stop the stack gracefully. Exit status: 0 after a clean
shutdown (or a demo whose every check passed), 1 on an error, 2 on a
usage error.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command, with its environment injected for tests; it
// returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "demo" {
		return runDemoCommand(ctx, args[1:], stdout, stderr)
	}
	return service.Command[*config]{Name: "commstack", Help: help, HTTP: stack.DefaultHTTP, Parse: parseFlags, Serve: serve}.Run(ctx, args, getenv, stdout, stderr)
}

// config is the command line after flags and environment.
type config struct {
	stack  stack.Config
	sync   service.SyncPolicy
	shards int
	service.Logging
}

// envVars names the environment variable of each flag.
var envVars = map[string]string{
	"data": "COMM_DATA", "gateway": "COMM_GATEWAY", "nats-listen": "COMM_NATS_LISTEN", "http": "COMM_HTTP",
	"sync": "COMM_SYNC", "accepted-shards": "COMM_ACCEPTED_SHARDS", "log-level": "COMM_LOG_LEVEL", "log-format": "COMM_LOG_FORMAT",
}

func newFlagSet(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet("commstack", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.stack.DataDir, "data", "data", "data directory")
	fs.StringVar(&cfg.stack.Gateway, "gateway", stack.DefaultGateway, "TCP address for clients")
	fs.StringVar(&cfg.stack.NATSListen, "nats-listen", stack.DefaultNATSListen, "loopback address of the embedded NATS server")
	fs.StringVar(&cfg.stack.HTTP, "http", stack.DefaultHTTP, "HTTP listen address")
	fs.Var(&cfg.sync, "sync", "fsync policy: always or an interval")
	fs.IntVar(&cfg.shards, "accepted-shards", 0, "streams the accepted messages are sharded over (0: the existing, or 4)")
	cfg.Logging.Flags(fs)
	return fs
}

func parseFlags(args []string, getenv func(string) string) (*config, error) {
	cfg := &config{}
	fs := newFlagSet(cfg)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (the modes are: commstack [flags], commstack demo, commstack health)", fs.Arg(0))
	}
	if err := service.ApplyEnv(fs, envVars, getenv); err != nil {
		return nil, err
	}
	return cfg, cfg.validate()
}

func (c *config) validate() error {
	if c.stack.DataDir == "" {
		return errors.New("--data must name a directory")
	}
	if c.stack.NATSListen == "none" {
		c.stack.NATSListen = ""
	}
	c.stack.SyncInterval = c.sync.Interval()
	if c.shards != 0 && streams.Shards(c.shards).Valid() != nil {
		return fmt.Errorf("--accepted-shards %d: want 1, 2, 4, 8 or 16 (or 0: the data directory's)", c.shards)
	}
	c.stack.AcceptedShards = streams.Shards(c.shards)
	return nil
}

// runDemoCommand is `commstack demo`.
func runDemoCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("commstack demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	data := fs.String("data", "", "data directory (default: a temporary one, removed afterwards)")
	level := fs.String("log-level", "warn", "log level of the stack")
	format := fs.String("log-format", "", "log format: json or console")
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, help)
		return 0
	}
	if err == nil {
		err = extraArgs(fs)
	}
	if err != nil {
		fmt.Fprintf(stderr, "commstack demo: %v\nUsage: commstack demo [--data DIR] [--log-level LEVEL] [--log-format FMT]\n", err)
		return 2
	}
	log, err := service.NewLogger(stderr, *level, *format)
	if err != nil {
		fmt.Fprintf(stderr, "commstack demo: %v\n", err)
		return 2
	}
	if err := runDemo(ctx, demoConfig{data: *data, log: log}, stdout); err != nil {
		fmt.Fprintf(stderr, "commstack demo: %v\n", err)
		return 1
	}
	return 0
}

func extraArgs(fs *flag.FlagSet) error {
	if fs.NArg() == 0 {
		return nil
	}
	return fmt.Errorf("unexpected argument %q", fs.Arg(0))
}
