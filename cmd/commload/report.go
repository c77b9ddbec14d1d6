package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/commsec/communicator/internal/loadgen"
)

// report prints the table of one run.
func report(w io.Writer, o *options, d *loadgen.Driver, use usage, raw *rawResult) {
	fmt.Fprintf(w, "\ncommload: %d clients in %d groups (%s), %s, %v measured after %v warm-up, %d-byte payloads\n",
		o.clients, o.groups, groupSizes(o), rateText(o.rate), o.duration, o.warmup, o.size)
	fmt.Fprintf(w, "Stack: internal/stack as commstack runs it (embedded NATS, services on in-process connections); GOMAXPROCS %d\n", runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "JetStream sync %s; the raw phases connect over loopback TCP\n\n", o.syncPolicy())
	ours := reportOurs(w, o, d, use)
	reportRaw(w, raw)
	if o.rate == 0 {
		fmt.Fprintf(w, "Communicator accepted / raw async publish: %.1f%%\n", 100*ours/raw.rate.PerSecond())
	}
}

// row prints one line of the table.
func row(w io.Writer, label, value, note string) {
	fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  %-26s %-44s %s", label, value, note), " "))
}

// reportOurs prints the Communicator's figures and returns its accepted
// messages per second.
func reportOurs(w io.Writer, o *options, d *loadgen.Driver, use usage) float64 {
	secs := o.duration.Seconds()
	accepted, copies, expected := d.Accepted(), d.Copies(), d.Expected()
	fmt.Fprintln(w, "Communicator (client → gateway → relay → JetStream → gateway → client)")
	row(w, "accepted messages/s", fmt.Sprintf("%.0f", float64(accepted)/secs), fmt.Sprintf("(%d in %v)", accepted, o.duration))
	row(w, "delivered copies/s", fmt.Sprintf("%.0f", float64(copies)/secs), fmt.Sprintf("(%d of %d expected)", copies, expected))
	row(w, "latency send → delivery", d.E2E.Quantiles(), "")
	row(w, "latency send → verdict", d.Verdict.Quantiles(), "")
	row(w, "send verdicts", d.Verdicts(), "")
	row(w, "JetStream writes / message", use.writesPer(d.AcceptedAll()), "")
	row(w, "CPU of this process", fmt.Sprintf("%.2f of %d cores", use.cores(), runtime.NumCPU()),
		"(simulated clients, gateway, relay and NATS together)")
	return float64(accepted) / secs
}

func reportRaw(w io.Writer, raw *rawResult) {
	fmt.Fprintln(w, "Raw JetStream, same server and payload size, after the load")
	row(w, "async publish msgs/s", fmt.Sprintf("%.0f", raw.rate.PerSecond()),
		fmt.Sprintf("(%d stored in %v)", raw.rate.Stored, raw.rate.Elapsed.Round(time.Millisecond)))
	row(w, "latency publish → consume", raw.latency.Quantiles(), fmt.Sprintf("(at %.0f msgs/s, %d consumed)", raw.latRate, raw.consumed))
	row(w, "relay pattern stores/s", fmt.Sprintf("%.0f", raw.pattern.PerSecond()),
		fmt.Sprintf("(synchronous compare-and-swap publish, %d workers: the relay's storage alone)", raw.pattern.Workers))
}

func groupSizes(o *options) string {
	small, rest := o.clients/o.groups, o.clients%o.groups
	if rest == 0 {
		return fmt.Sprintf("%d members each", small)
	}
	return fmt.Sprintf("%d or %d members", small, small+1)
}

func rateText(rate float64) string {
	if rate == 0 {
		return "saturation (each client sends back to back)"
	}
	return fmt.Sprintf("target %.0f msgs/s in total", rate)
}
