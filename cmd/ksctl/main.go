// Command ksctl is the Communicator operator's tool: it creates the key
// pairs of a deployment, sends signed admin requests to the keyserver over
// NATS (register and revoke clients, create and change groups, list), and
// audits a group by replaying the event log straight from JetStream. Run
// `ksctl --help` for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/commsec/communicator/internal/service"
	"github.com/commsec/communicator/keyserver/admin"
)

const helpHead = `ksctl: the Communicator operator's tool.

It sends admin requests, signed with your operator key, to the keyserver
over NATS; the keyserver accepts them only if your operator.pub is in its
configuration. 'ksctl audit' reads the event log straight from JetStream
and verifies it with the keyserver's public key.

Usage:
  ksctl [global flags] COMMAND [flags] [arguments]
  ksctl COMMAND --help

Commands:
`

const helpTail = `
Global flags (before or after the command; each also read from the
environment variable shown, a flag wins):
  --nats URL            NATS server URL, or several comma-separated, tried
                        in that order [COMM_NATS_URL]
                        (default nats://127.0.0.1:4222)
  --nats-creds FILE     NATS credentials file [COMM_NATS_CREDS]: the admin
                        user's nkey seed for the commands, the auditor's
                        for audit (commstack: DATA/creds/admin.nk and
                        auditor.nk; docker compose: deploy/secrets/nats/)
  --nats-ca FILE        the CA certificate that signs the NATS servers'
                        certificates: connect over TLS and trust only it
                        [COMM_NATS_CA] (docker compose:
                        deploy/secrets/nats/ca.pem)
  --operator-key FILE   your operator private key [COMM_OPERATOR_KEY]
                        (default ./operator.key)
  --timeout DUR         how long to wait for NATS and the keyserver
                        (default 30s)

Example session:
  ksctl init --dir keys
  keyserver --key keys/keyserver.key --operator keys/operator.pub &
  export COMM_OPERATOR_KEY=keys/operator.key COMM_NATS_CREDS=admin.nk
  ksctl client register alice.pub --name alice
  ksctl client register bob.pub --name bob
  ksctl group create ops
  ksctl group add ops alice bob
  ksctl group remove ops bob --reason "left the team"
  ksctl list
  ksctl audit ops --nats-creds auditor.nk --keyserver-pub keys/keyserver.pub --html ops.html

Exit status: 0 done; 1 error, including a refusal by the keyserver;
2 usage error; 3 the audit found a tampered or broken event log.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// globals are the flags every command takes.
type globals struct {
	natsURL, natsCreds, natsCA string
	operatorKey                string
	timeout                    time.Duration
}

// globalEnv names the environment variable of the global flags and of
// audit's --keyserver-pub.
var globalEnv = map[string]string{
	"nats": "COMM_NATS_URL", "nats-creds": "COMM_NATS_CREDS", "nats-ca": "COMM_NATS_CA",
	"operator-key": "COMM_OPERATOR_KEY", "keyserver-pub": "COMM_KEYSERVER_PUB",
}

func defaultGlobals() globals {
	return globals{natsURL: "nats://127.0.0.1:4222", operatorKey: "operator.key", timeout: 30 * time.Second}
}

// register defines the global flags on fs with their current values as
// defaults, so that a command's flag set keeps what was given before the
// command's name.
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.natsURL, "nats", g.natsURL, "NATS server `URL`")
	fs.StringVar(&g.natsCreds, "nats-creds", g.natsCreds, "NATS credentials `FILE`")
	fs.StringVar(&g.natsCA, "nats-ca", g.natsCA, "CA certificate `FILE` of the NATS servers")
	fs.StringVar(&g.operatorKey, "operator-key", g.operatorKey, "your operator private key `FILE`")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "how long to wait for NATS, and for each attempt of a keyserver request (sent again with the same signature, up to 3 attempts)")
}

var isGlobal = map[string]bool{"nats": true, "nats-creds": true, "nats-ca": true, "operator-key": true, "timeout": true}

// run is the whole command, with its environment injected for tests; it
// returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	a := &app{g: defaultGlobals(), stdout: stdout, stderr: stderr, getenv: getenv, tty: service.IsTerminal(stderr)}
	top := flag.NewFlagSet("ksctl", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	a.g.register(top)
	err := top.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printHelp(stdout)
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "ksctl: %v\nRun 'ksctl --help' for usage.\n", err)
		return 2
	case top.NArg() == 0:
		printHelp(stderr)
		return 2
	}
	defer a.close()
	return a.exitCode(a.dispatch(ctx, top, top.Args()))
}

func printHelp(w io.Writer) {
	fmt.Fprint(w, helpHead)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, helpTail)
}

// exitCode prints err and turns it into the exit status.
func (a *app) exitCode(err error) int {
	var ue *usageError
	var ex *exitError
	var ae *admin.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ex):
		return ex.code
	case errors.As(err, &ue):
		fmt.Fprintf(a.stderr, "ksctl %s: %s\nUsage: ksctl %s %s\nRun 'ksctl %s --help' for more.\n",
			ue.cmd.name, ue.msg, ue.cmd.name, ue.cmd.args, ue.cmd.name)
		return 2
	case errors.As(err, &ae):
		fmt.Fprintf(a.stderr, "ksctl: %s\n", ae.Error())
		return 1
	}
	fmt.Fprintf(a.stderr, "ksctl: %s\n", strings.TrimPrefix(err.Error(), "ksctl: "))
	return 1
}

// usageError is a command used wrongly: exit status 2.
type usageError struct {
	cmd *command
	msg string
}

func (e *usageError) Error() string { return e.msg }

// exitError ends ksctl with code; what it had to say is already printed.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }
