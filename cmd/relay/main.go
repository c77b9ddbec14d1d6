// Command relay runs the Communicator's relay service: it decides, message
// by message, whether a group message is relayed. It connects to NATS
// JetStream, replays the signed event log to learn who is in which group
// (verifying it with the keyserver's public key), claims its share of the
// relay partitions, and serves /metrics, /healthz and /readyz over HTTP.
// `relay health` is the health check of images without a shell. Run
// `relay --help` for the flags.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/commsec/communicator/internal/service"
	"github.com/commsec/communicator/streams"
)

const help = `relay: the Communicator's relay.

Gateways forward every group message a client sends to the relay that
owns the group's partition. The relay checks the envelope's clear
metadata against the signed event log: the sender is the client the
gateway authenticated, registered, not revoked and a member of the
group's current epoch (or of the previous one within --grace of a
rekey), and its counter is above the last one accepted. It records the
counter by compare-and-swap (bucket COMM_COUNTERS) and stores the
message for delivery (stream COMM_MSGS). It holds no key and never sees
a plaintext. Relays share the partitions through leases (bucket
COMM_RELAYS): run several for fail-over.

Usage:
  relay [flags]
  relay health [--http ADDR] [--timeout DUR] [--wait DUR]
      exit 0 if the relay listening on ADDR is ready, 1 if not
      (the health check of container images that have no shell);
      --wait DUR asks again until it is ready or DUR has passed

Flags (each also read from the environment variable shown; a flag wins):
  --nats URL            NATS server URL, or several comma-separated
                        [COMM_NATS_URL] (default nats://127.0.0.1:4222)
  --nats-creds FILE     NATS credentials file (.creds), if the server wants
                        one [COMM_NATS_CREDS]
  --nats-ca FILE        the CA certificate (PEM) that signs the NATS
                        servers' certificates: connect over TLS and trust
                        only that CA [COMM_NATS_CA]
  --keyserver-pub FILE  the keyserver's public key (keyserver.pub from
                        'ksctl init'): the events the relay trusts; required
                        [COMM_KEYSERVER_PUB]
  --http ADDR           HTTP listener for /metrics, /healthz and /readyz
                        [COMM_HTTP] (default 127.0.0.1:9101)
  --replicas N          JetStream replicas of the streams: 1 on one server,
                        3 on a cluster [COMM_REPLICAS] (default 1)
  --retention DUR       how long messages are kept for offline clients,
                        e.g. 7d, 36h [COMM_RETENTION] (default 7d)
  --grace DUR           how long after a rekey messages of the previous
                        epoch are still accepted [COMM_GRACE] (default 30s)
  --id NAME             this relay's name in partition leases and logs:
                        letters, digits, '-' and '_' [COMM_RELAY_ID]
                        (default the host name and a random suffix)
  --log-level LEVEL     trace, debug, info, warn or error [COMM_LOG_LEVEL]
                        (default info)
  --log-format FMT      json or console [COMM_LOG_FORMAT]
                        (default console on a terminal, json otherwise)
  -h, --help            this help

HTTP endpoints:
  /metrics   Prometheus: comm_relay_verdicts_total{verdict,reason},
             comm_relay_partitions_owned, comm_relay_leases_total{event},
             comm_relay_counter_conflicts_total,
             comm_relay_events_refused_total, comm_relay_log_position,
             comm_relay_jetstream_moves_total; histograms
             comm_relay_decision_seconds{verdict},
             comm_relay_store_write_seconds; go_*, process_*
  /healthz   200 "ok" while the process runs
  /readyz    200 "ok" once NATS is connected, JetStream answers through
             it and the log is replayed; 503 with the reason otherwise

NATS nodes: --nats should name every node of the cluster. Every second
the relay asks JetStream, through its node, for the event stream's info;
after three probes in a row fail (the node is cut off from the stream's
leader, or is a leader cut off from its replicas) and JetStream answers
through another node, it moves to the next node, within 5 s of the cut,
and counts it (comm_relay_jetstream_moves_total).

Example:
  relay --nats nats://127.0.0.1:4222 --keyserver-pub /etc/comm/keyserver.pub
  # or, in a container:
  COMM_NATS_URL=nats://nats:4222 COMM_KEYSERVER_PUB=/keys/keyserver.pub \
  COMM_HTTP=0.0.0.0:9101 relay

SIGINT or SIGTERM stop it gracefully: it releases its partitions so that
another relay takes them at once. Exit status: 0 after a clean shutdown,
1 on an error, 2 on a usage error.
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
	return service.Command[*config]{Name: "relay", Help: help, HTTP: defaultHTTP, Parse: parseFlags, Serve: serve}.Run(ctx, args, getenv, stdout, stderr)
}

// config is the command line after flags and environment.
type config struct {
	natsURL, natsCreds string
	natsCA             string
	keyserverPub       string
	httpAddr           string
	replicas           int
	retention, grace   time.Duration
	id                 string
	service.Logging
}

// envVars names the environment variable of each flag.
var envVars = map[string]string{
	"nats": "COMM_NATS_URL", "nats-creds": "COMM_NATS_CREDS", "nats-ca": "COMM_NATS_CA", "keyserver-pub": "COMM_KEYSERVER_PUB",
	"http": "COMM_HTTP", "replicas": "COMM_REPLICAS", "retention": "COMM_RETENTION", "grace": "COMM_GRACE",
	"id": "COMM_RELAY_ID", "log-level": "COMM_LOG_LEVEL", "log-format": "COMM_LOG_FORMAT",
}

const (
	defaultHTTP  = "127.0.0.1:9101"
	defaultGrace = 30 * time.Second
)

func newFlagSet(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.natsURL, "nats", "nats://127.0.0.1:4222", "NATS server URL")
	fs.StringVar(&cfg.natsCreds, "nats-creds", "", "NATS credentials file")
	fs.StringVar(&cfg.natsCA, "nats-ca", "", "CA certificate file of the NATS servers")
	fs.StringVar(&cfg.keyserverPub, "keyserver-pub", "", "keyserver public key file")
	fs.StringVar(&cfg.httpAddr, "http", defaultHTTP, "HTTP listen address")
	fs.IntVar(&cfg.replicas, "replicas", 1, "JetStream replicas")
	service.DurationVar(fs, &cfg.retention, "retention", streams.DefaultRetention, "retention of messages")
	service.DurationVar(fs, &cfg.grace, "grace", defaultGrace, "grace period of the previous epoch")
	fs.StringVar(&cfg.id, "id", "", "relay name")
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
	if cfg.id == "" {
		cfg.id = defaultID()
	}
	return cfg, cfg.validate()
}

// validID is what a relay name may hold: it is one token of a key in the
// COMM_RELAYS bucket.
var validID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (c *config) validate() error {
	switch {
	case c.keyserverPub == "":
		return errors.New("--keyserver-pub is required: the keyserver's public key file (see 'ksctl init')")
	case c.replicas < 1 || c.replicas > 5:
		return fmt.Errorf("--replicas %d: want 1 to 5", c.replicas)
	case c.retention <= 0:
		return errors.New("--retention must be positive")
	case c.grace <= 0:
		return errors.New("--grace must be positive")
	case !validID.MatchString(c.id):
		return fmt.Errorf("--id %q: use 1 to 64 letters, digits, '-' or '_'", c.id)
	}
	if err := service.CheckNATSURL(c.natsURL); err != nil {
		return fmt.Errorf("--nats: %w", err)
	}
	return nil
}

// defaultID is the host name (its first label, cut to what a relay name
// may hold) and a random suffix, so that two relays on one host differ.
func defaultID() string {
	host, _ := os.Hostname()
	host, _, _ = strings.Cut(host, ".")
	name := []byte(host[:min(len(host), 40)])
	for i, c := range name {
		if !validID.Match([]byte{c}) {
			name[i] = '-'
		}
	}
	if len(name) == 0 {
		name = []byte("relay")
	}
	var b [4]byte
	rand.Read(b[:])
	return string(name) + "-" + hex.EncodeToString(b[:])
}
