// Command gateway runs the Communicator's gateway service: it terminates
// the clients' authenticated channels over TCP. It connects to NATS
// JetStream, replays the signed event log to learn which clients exist and
// which groups they are in (verifying it with the keyserver's public key),
// then accepts clients, pushes them their key bundles, forwards their
// group messages to the relays and delivers their groups' messages. It
// serves /metrics, /healthz and /readyz over HTTP. `gateway health` is the
// health check of images without a shell. Run `gateway --help` for the
// flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/internal/service"
	"github.com/commsec/communicator/streams"
)

const help = `gateway: the Communicator's gateway.

Clients connect to it over TCP and run the handshake (M1..M4) against its
server key Sk_S, the key they pin as Pk_S. The gateway admits registered,
unrevoked clients only, pushes each its key bundles (wrapped to the
client by the keyserver, stream COMM_BUNDLES), forwards the group
messages it sends to the relay owning the group's partition, and
delivers the accepted messages of its groups (stream COMM_MSGS) from a
per-client cursor (bucket COMM_CURSORS). It never sees a group key or a
plaintext. Run several behind a TCP load balancer, all with the same key.

Usage:
  gateway [flags]
  gateway health [--http ADDR] [--timeout DUR] [--wait DUR]
      exit 0 if the gateway listening on ADDR is ready, 1 if not
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
  --key FILE            the gateways' private server key Sk_S (gateway.key
                        from 'ksctl init'); required [COMM_KEY]
  --keyserver-pub FILE  the keyserver's public key (keyserver.pub): the
                        events the gateway trusts; required
                        [COMM_KEYSERVER_PUB]
  --listen ADDR         TCP address for clients [COMM_LISTEN]
                        (default 127.0.0.1:7400, this machine only; use
                        0.0.0.0:7400 or :7400 to accept clients on every
                        interface)
  --name NAME           this gateway's name, the same over restarts and
                        unique among the gateways: its cursor snapshot
                        is kept under it (letters, digits, '-', '_')
                        [COMM_GATEWAY_NAME] (default: from --listen)
  --http ADDR           HTTP listener for /metrics, /healthz and /readyz
                        [COMM_HTTP] (default 127.0.0.1:9102)
  --max-handshakes N    handshakes in progress at once; past it new
                        connections are told "busy" [COMM_MAX_HANDSHAKES]
                        (default 256)
  --max-handshakes-per-source N
                        when all those are taken, the share of one source
                        address (an IPv6 /64): past it its new connections
                        are told "busy", below it a newcomer evicts a
                        handshake of the source holding the most
                        [COMM_MAX_HANDSHAKES_PER_SOURCE] (default 16)
  --m1-timeout DUR      how long a connection may take to send its whole
                        first handshake message [COMM_M1_TIMEOUT]
                        (default 2s)
  --queue N             frames waiting for one client; a client that falls
                        further behind is disconnected and catches up later
                        [COMM_QUEUE] (default 256)
  --idle-timeout DUR    close a connection silent for this long (clients
                        ping every 30s) [COMM_IDLE_TIMEOUT] (default 90s)
  --replicas N          JetStream replicas of the streams: 1 on one server,
                        3 on a cluster [COMM_REPLICAS] (default 1)
  --retention DUR       how long key bundles and messages are kept for
                        offline clients, e.g. 7d, 36h [COMM_RETENTION]
                        (default 7d)
  --log-level LEVEL     trace, debug, info, warn or error [COMM_LOG_LEVEL]
                        (default info)
  --log-format FMT      json or console [COMM_LOG_FORMAT]
                        (default console on a terminal, json otherwise)
  -h, --help            this help

HTTP endpoints:
  /metrics   Prometheus: comm_gateway_connections,
             comm_gateway_handshakes_total,
             comm_gateway_handshakes_refused_total{reason},
             comm_gateway_connections_dropped_total{reason},
             comm_gateway_sends_total{verdict,reason},
             comm_gateway_jetstream_moves_total; histograms
             comm_gateway_handshake_duration_seconds,
             comm_gateway_send_verdict_seconds,
             comm_gateway_delivery_lag_seconds{path}; go_*, process_*
  /healthz   200 "ok" while the process runs
  /readyz    200 "ok" once NATS is connected, JetStream answers through
             it, the log is replayed and clients can connect; 503 with
             the reason otherwise

NATS nodes: --nats should name every node of the cluster. Every second
the gateway asks JetStream, through its node, for the event stream's info;
after three probes in a row fail (the node is cut off from the stream's
leader, or is a leader cut off from its replicas) and JetStream answers
through another node, it moves to the next node, within 5 s of the cut,
and counts it (comm_gateway_jetstream_moves_total).

Example:
  gateway --nats nats://127.0.0.1:4222 --key /etc/comm/gateway.key \
          --keyserver-pub /etc/comm/keyserver.pub --listen 0.0.0.0:7400
  # or, in a container:
  COMM_NATS_URL=nats://nats:4222 COMM_KEY=/keys/gateway.key \
  COMM_KEYSERVER_PUB=/keys/keyserver.pub COMM_LISTEN=0.0.0.0:7400 \
  COMM_HTTP=0.0.0.0:9102 gateway

SIGINT or SIGTERM stop it gracefully: it stops accepting, closes every
connection and saves the clients' cursors. Exit status: 0 after a clean
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
	return service.Command[*config]{Name: "gateway", Help: help, HTTP: defaultHTTP, Parse: parseFlags, Serve: serve}.Run(ctx, args, getenv, stdout, stderr)
}

// config is the command line after flags and environment.
type config struct {
	natsURL, natsCreds     string
	natsCA                 string
	keyFile, keyserverPub  string
	listen, httpAddr       string
	name                   string
	maxHandshakes, queue   int
	perSource              int
	m1Timeout              time.Duration
	idleTimeout, retention time.Duration
	replicas               int
	service.Logging
}

// envVars names the environment variable of each flag.
var envVars = map[string]string{
	"nats": "COMM_NATS_URL", "nats-creds": "COMM_NATS_CREDS", "nats-ca": "COMM_NATS_CA", "key": "COMM_KEY", "keyserver-pub": "COMM_KEYSERVER_PUB",
	"listen": "COMM_LISTEN", "name": "COMM_GATEWAY_NAME", "http": "COMM_HTTP", "max-handshakes": "COMM_MAX_HANDSHAKES",
	"max-handshakes-per-source": "COMM_MAX_HANDSHAKES_PER_SOURCE", "m1-timeout": "COMM_M1_TIMEOUT", "queue": "COMM_QUEUE",
	"idle-timeout": "COMM_IDLE_TIMEOUT", "replicas": "COMM_REPLICAS", "retention": "COMM_RETENTION",
	"log-level": "COMM_LOG_LEVEL", "log-format": "COMM_LOG_FORMAT",
}

const (
	defaultListen = "127.0.0.1:7400"
	defaultHTTP   = "127.0.0.1:9102"
)

func newFlagSet(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.natsURL, "nats", "nats://127.0.0.1:4222", "NATS server URL")
	fs.StringVar(&cfg.natsCreds, "nats-creds", "", "NATS credentials file")
	fs.StringVar(&cfg.natsCA, "nats-ca", "", "CA certificate file of the NATS servers")
	fs.StringVar(&cfg.keyFile, "key", "", "gateway private server key file")
	fs.StringVar(&cfg.keyserverPub, "keyserver-pub", "", "keyserver public key file")
	fs.StringVar(&cfg.listen, "listen", defaultListen, "TCP listen address for clients")
	fs.StringVar(&cfg.httpAddr, "http", defaultHTTP, "HTTP listen address")
	fs.StringVar(&cfg.name, "name", "", "gateway name (default: from --listen)")
	fs.IntVar(&cfg.maxHandshakes, "max-handshakes", 256, "concurrent handshakes")
	fs.IntVar(&cfg.perSource, "max-handshakes-per-source", 16, "handshakes of one source when all are taken")
	service.DurationVar(fs, &cfg.m1Timeout, "m1-timeout", 2*time.Second, "deadline of the first handshake message")
	fs.IntVar(&cfg.queue, "queue", 256, "frames queued per client")
	service.DurationVar(fs, &cfg.idleTimeout, "idle-timeout", 90*time.Second, "idle connection timeout")
	fs.IntVar(&cfg.replicas, "replicas", 1, "JetStream replicas")
	service.DurationVar(fs, &cfg.retention, "retention", streams.DefaultRetention, "retention of bundles and messages")
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
		return errors.New("--key is required: the gateways' private server key file (gateway.key from 'ksctl init')")
	case c.keyserverPub == "":
		return errors.New("--keyserver-pub is required: the keyserver's public key file (see 'ksctl init')")
	case c.maxHandshakes < 1:
		return fmt.Errorf("--max-handshakes %d: want at least 1", c.maxHandshakes)
	case c.perSource < 1:
		return fmt.Errorf("--max-handshakes-per-source %d: want at least 1", c.perSource)
	case c.m1Timeout < 100*time.Millisecond || c.m1Timeout > 10*time.Second:
		return fmt.Errorf("--m1-timeout %v: want 100ms to 10s (the whole handshake's deadline)", c.m1Timeout)
	case c.queue < 1:
		return fmt.Errorf("--queue %d: want at least 1", c.queue)
	case c.idleTimeout < time.Second:
		return fmt.Errorf("--idle-timeout %v: want at least 1s (clients ping every 30s)", c.idleTimeout)
	case c.replicas < 1 || c.replicas > 5:
		return fmt.Errorf("--replicas %d: want 1 to 5", c.replicas)
	case c.retention <= 0:
		return errors.New("--retention must be positive")
	}
	if _, _, err := net.SplitHostPort(c.listen); err != nil {
		return fmt.Errorf("--listen %q: want HOST:PORT, e.g. 127.0.0.1:7400 or 0.0.0.0:7400", c.listen)
	}
	if c.name != "" {
		if err := gateway.CheckName(c.name); err != nil {
			return fmt.Errorf("--name: %w", err)
		}
	}
	if err := service.CheckNATSURL(c.natsURL); err != nil {
		return fmt.Errorf("--nats: %w", err)
	}
	return nil
}
