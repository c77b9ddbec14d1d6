// Command keyserver runs the Communicator's keyserver service: the
// authority on who is in which group. It connects to NATS JetStream,
// rebuilds its state by replaying the signed event log, answers the admin
// API that operators use through ksctl, and serves /metrics, /healthz and
// /readyz over HTTP. `keyserver health` is the health check of images
// without a shell. Run `keyserver --help` for the flags.
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

	"github.com/commsec/communicator/internal/service"
	"github.com/commsec/communicator/streams"
)

const help = `keyserver: the Communicator's keyserver.

It decides who may read which group. Operators send it signed requests
with ksctl; it writes every change as a signed, hash-chained event to the
JetStream stream COMM_EVENTS, opens a new epoch with a fresh group key on
every membership change, and publishes that key wrapped to each member
(stream COMM_BUNDLES) for the gateways. At start-up it rebuilds its state
by replaying the event log. It never sees a message's plaintext.

Usage:
  keyserver [flags]
  keyserver health [--http ADDR] [--timeout DUR] [--wait DUR]
      exit 0 if the keyserver listening on ADDR is ready, 1 if not
      (the health check of container images that have no shell);
      --wait DUR asks again until it is ready or DUR has passed

Flags (each also read from the environment variable shown; a flag wins):
  --nats URL          NATS server URL, or several comma-separated
                      [COMM_NATS_URL] (default nats://127.0.0.1:4222)
  --nats-creds FILE   NATS credentials file (.creds), if the server wants one
                      [COMM_NATS_CREDS]
  --nats-ca FILE      the CA certificate (PEM) that signs the NATS servers'
                      certificates: connect over TLS and trust only that
                      CA [COMM_NATS_CA]
  --key FILE          the keyserver's private key (keyserver.key from
                      'ksctl init'); required [COMM_KEY]
  --operator FILE     an operator's public key (operator.pub) allowed to use
                      the admin API; repeatable or comma-separated
                      [COMM_OPERATOR]
  --operators DIR     every *.pub operator public key in DIR
                      [COMM_OPERATORS]
                      (at least one operator key is required, from either)
  --http ADDR         HTTP listener for /metrics, /healthz and /readyz
                      [COMM_HTTP] (default 127.0.0.1:9100)
  --replicas N        JetStream replicas of the streams: 1 on one server,
                      3 on a cluster [COMM_REPLICAS] (default 1)
  --retention DUR     how long key bundles and messages are kept for
                      offline clients, e.g. 7d, 36h [COMM_RETENTION]
                      (default 7d); the event log is kept forever
  --accepted-shards K the number of streams the accepted messages are
                      sharded over: 1, 2, 4, 8 or 16 [COMM_ACCEPTED_SHARDS]
                      (default 0: the existing deployment's, or 4 for a
                      new one). K is fixed when the streams are created:
                      a different K on an existing deployment refuses to
                      start (docs/SCALING.md, "Changing the number of
                      shards")
  --log-level LEVEL   trace, debug, info, warn or error [COMM_LOG_LEVEL]
                      (default info)
  --log-format FMT    json or console [COMM_LOG_FORMAT]
                      (default console on a terminal, json otherwise)
  -h, --help          this help

HTTP endpoints:
  /metrics   Prometheus: comm_keyserver_* counters and gauges, the
             histogram comm_keyserver_rekey_duration_seconds; go_*, process_*
  /healthz   200 "ok" while the process runs
  /readyz    200 "ok" once NATS is connected and the log is replayed,
             503 with the reason before that

Example:
  ksctl init --dir /etc/comm
  keyserver --nats nats://127.0.0.1:4222 --key /etc/comm/keyserver.key \
            --operator /etc/comm/operator.pub --http 127.0.0.1:9100
  # or, in a container:
  COMM_NATS_URL=nats://nats:4222 COMM_KEY=/keys/keyserver.key \
  COMM_OPERATORS=/keys/operators COMM_HTTP=0.0.0.0:9100 keyserver

SIGINT or SIGTERM stop it gracefully. Exit status: 0 after a clean
shutdown, 1 on an error, 2 on a usage error.
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
	return service.Command[*config]{Name: "keyserver", Help: help, HTTP: defaultHTTP, Parse: parseFlags, Serve: serve}.Run(ctx, args, getenv, stdout, stderr)
}

// config is the command line after flags and environment.
type config struct {
	natsURL, natsCreds string
	natsCA             string
	keyFile            string
	operatorFiles      service.Strings
	operatorsDir       string
	httpAddr           string
	replicas           int
	retention          time.Duration
	shards             int
	service.Logging
}

// envVars names the environment variable of each flag.
var envVars = map[string]string{
	"nats": "COMM_NATS_URL", "nats-creds": "COMM_NATS_CREDS", "nats-ca": "COMM_NATS_CA", "key": "COMM_KEY",
	"operator": "COMM_OPERATOR", "operators": "COMM_OPERATORS", "http": "COMM_HTTP",
	"replicas": "COMM_REPLICAS", "retention": "COMM_RETENTION", "accepted-shards": "COMM_ACCEPTED_SHARDS",
	"log-level": "COMM_LOG_LEVEL", "log-format": "COMM_LOG_FORMAT",
}

const defaultHTTP = "127.0.0.1:9100"

func newFlagSet(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet("keyserver", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.natsURL, "nats", "nats://127.0.0.1:4222", "NATS server URL")
	fs.StringVar(&cfg.natsCreds, "nats-creds", "", "NATS credentials file")
	fs.StringVar(&cfg.natsCA, "nats-ca", "", "CA certificate file of the NATS servers")
	fs.StringVar(&cfg.keyFile, "key", "", "keyserver private key file")
	fs.Var(&cfg.operatorFiles, "operator", "operator public key file (repeatable)")
	fs.StringVar(&cfg.operatorsDir, "operators", "", "directory of operator public key files (*.pub)")
	fs.StringVar(&cfg.httpAddr, "http", defaultHTTP, "HTTP listen address")
	fs.IntVar(&cfg.replicas, "replicas", 1, "JetStream replicas")
	service.DurationVar(fs, &cfg.retention, "retention", streams.DefaultRetention, "retention of bundles and messages")
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
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := service.ApplyEnv(fs, envVars, getenv); err != nil {
		return nil, err
	}
	return cfg, cfg.validate()
}

func (c *config) validate() error {
	switch {
	case c.keyFile == "":
		return errors.New("--key is required: the keyserver's private key file (see 'ksctl init')")
	case len(c.operatorFiles) == 0 && c.operatorsDir == "":
		return errors.New("no operator keys: give --operator FILE or --operators DIR (without one nobody can administer the keyserver)")
	case c.replicas < 1 || c.replicas > 5:
		return fmt.Errorf("--replicas %d: want 1 to 5", c.replicas)
	case c.retention <= 0:
		return errors.New("--retention must be positive")
	case c.shards != 0 && streams.Shards(c.shards).Valid() != nil:
		return fmt.Errorf("--accepted-shards %d: want 1, 2, 4, 8 or 16 (or 0: the existing deployment's)", c.shards)
	}
	if err := service.CheckNATSURL(c.natsURL); err != nil {
		return fmt.Errorf("--nats: %w", err)
	}
	return nil
}
