package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/internal/atomicfile"
	"github.com/commsec/communicator/keyserver/audit"
	"github.com/commsec/communicator/protocol/keys"
)

func auditCommand() *command {
	c := &command{name: "audit", args: "GROUP [--json] [--html FILE] [--keyserver-pub FILE]",
		summary: "verify a group's history in the event log: who could read it, when",
		help: `Replays the whole event log from JetStream (not through the keyserver),
verifies every signature of the group's events and the hash chains of the
log against the keyserver's public key, and prints the group's epochs and
membership timeline. GROUP is a name or a 32-digit hex id; a deleted
group is found by its id or its last name.

With --html FILE it also writes a self-contained page with a timeline
chart. A tampered or truncated log is reported first, with the first
broken event, then the history as the log tells it, marked as not
verified (on the page too), and exit status 3. A --keyserver-pub under
which nothing in the log verifies is reported as such.`}
	c.setup = func(fs *flag.FlagSet) func(context.Context, *app, []string) error {
		asJSON := fs.Bool("json", false, "print the report as JSON")
		html := fs.String("html", "", "also write an HTML report to `FILE`")
		ksPub := fs.String("keyserver-pub", "keyserver.pub", "the keyserver's public key `FILE`")
		return func(ctx context.Context, a *app, args []string) error {
			if err := want(c, args, 1, 1); err != nil {
				return err
			}
			return a.audit(ctx, args[0], *ksPub, *asJSON, *html)
		}
	}
	return c
}

func (a *app) audit(ctx context.Context, group, ksPub string, asJSON bool, html string) error {
	data, err := keys.ReadFile(ksPub)
	if err != nil {
		return fmt.Errorf("--keyserver-pub: %w", err)
	}
	ks, err := keys.DecodePublicKey(data, keys.KindKeyserverPublic)
	if err != nil {
		return fmt.Errorf("--keyserver-pub %s: %w", ksPub, err)
	}
	nc, err := a.connectAs("ksctl-audit")
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	bar := &progress{w: a.stderr, tty: a.tty}
	r, err := audit.Run(ctx, js, ks, group, bar.update)
	bar.finish()
	var broken *audit.BrokenError
	var wrongKey *audit.WrongKeyError
	switch {
	case errors.As(err, &broken):
		return a.reportBroken(r, broken, asJSON, html)
	case errors.As(err, &wrongKey):
		return fmt.Errorf("--keyserver-pub %s: %w", ksPub, err)
	case err != nil:
		return err
	}
	if err := writeReport(a.stdout, r, asJSON); err != nil {
		return err
	}
	if html != "" {
		return writeHTML(a.stderr, r, html)
	}
	return nil
}

// reportBroken says first that verification failed, then prints the
// report (which says again that it is not verified) and writes the HTML
// page, which shows the breakage; exit status 3.
func (a *app) reportBroken(r *audit.Report, b *audit.BrokenError, asJSON bool, html string) error {
	fmt.Fprintf(a.stderr, "TAMPERED OR BROKEN LOG: first broken event %d on %s: %v\n", b.StreamSeq, b.Subject, b.Err)
	if r == nil {
		fmt.Fprintln(a.stderr, "the group's own creation is what broke: there is no report to show")
		if html != "" {
			fmt.Fprintf(a.stderr, "%s not written\n", html)
		}
		return &exitError{3}
	}
	if err := writeReport(a.stdout, r, asJSON); err != nil {
		return err
	}
	if html != "" {
		if err := writeHTML(a.stderr, r, html); err != nil {
			return err
		}
	}
	return &exitError{3}
}

func writeReport(w io.Writer, r *audit.Report, asJSON bool) error {
	if asJSON {
		return r.WriteJSON(w)
	}
	return r.WriteText(w)
}

func writeHTML(stderr io.Writer, r *audit.Report, path string) error {
	var b strings.Builder
	if err := r.WriteHTML(&b); err != nil {
		return err
	}
	if err := atomicfile.Write(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	fmt.Fprintf(stderr, "wrote %s\n", path)
	return nil
}

// progress shows the replay on stderr: a redrawn bar on a terminal, a
// line per tenth otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	tenth uint64 // tenths already reported (not on a terminal)
	drawn bool
}

const barWidth = 30

func (p *progress) update(done, total uint64) {
	pct := uint64(100)
	if total > 0 {
		pct = min(100, done*100/total)
	}
	if !p.tty {
		if t := pct / 10; t > p.tenth || !p.drawn {
			p.tenth, p.drawn = t, true
			fmt.Fprintf(p.w, "replaying events %d/%d %d%%\n", done, total, pct)
		}
		return
	}
	fill := int(pct) * barWidth / 100
	bar := strings.Repeat("=", fill)
	if fill < barWidth {
		bar += ">" + strings.Repeat(" ", barWidth-fill-1)
	}
	fmt.Fprintf(p.w, "\rreplaying events %d/%d [%s] %d%%", done, total, bar, pct)
	p.drawn = true
}

func (p *progress) finish() {
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
	}
}
