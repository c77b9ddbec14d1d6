package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"
)

// report prints the table of one run.
func report(w io.Writer, o *options, d *driver, use usage, raw *rawResult) {
	fmt.Fprintf(w, "\ncommload: %d clients in %d groups (%s), %s, %v measured after %v warm-up, %d-byte payloads\n",
		o.clients, o.groups, groupSizes(o), rateText(o.rate), o.duration, o.warmup, o.size)
	fmt.Fprintf(w, "Stack: internal/stack as commstack runs it (embedded NATS, services on in-process connections); GOMAXPROCS %d\n", runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "JetStream sync %s; the raw phases connect over loopback TCP\n\n", o.syncPolicy())
	ours := reportOurs(w, o, d, use)
	reportRaw(w, raw)
	if o.rate == 0 {
		fmt.Fprintf(w, "Communicator accepted / raw async publish: %.1f%%\n", 100*ours/raw.rate())
	}
}

// row prints one line of the table.
func row(w io.Writer, label, value, note string) {
	fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  %-26s %-44s %s", label, value, note), " "))
}

// reportOurs prints the Communicator's figures and returns its accepted
// messages per second.
func reportOurs(w io.Writer, o *options, d *driver, use usage) float64 {
	secs := o.duration.Seconds()
	accepted, copies, expected := d.accepted.Load(), d.copies.Load(), d.expected.Load()
	fmt.Fprintln(w, "Communicator (client → gateway → relay → JetStream → gateway → client)")
	row(w, "accepted messages/s", fmt.Sprintf("%.0f", float64(accepted)/secs), fmt.Sprintf("(%d in %v)", accepted, o.duration))
	row(w, "delivered copies/s", fmt.Sprintf("%.0f", float64(copies)/secs), fmt.Sprintf("(%d of %d expected)", copies, expected))
	row(w, "latency send → delivery", quantiles(&d.e2e), "")
	row(w, "latency send → verdict", quantiles(&d.verdict), "")
	row(w, "send verdicts", verdictText(d), "")
	row(w, "JetStream writes / message", use.writesPer(d.acceptedAll.Load()), "")
	row(w, "CPU of this process", fmt.Sprintf("%.2f of %d cores", use.cores(), runtime.NumCPU()),
		"(simulated clients, gateway, relay and NATS together)")
	return float64(accepted) / secs
}

func reportRaw(w io.Writer, raw *rawResult) {
	fmt.Fprintln(w, "Raw JetStream, same server and payload size, after the load")
	row(w, "async publish msgs/s", fmt.Sprintf("%.0f", raw.rate()), fmt.Sprintf("(%d stored in %v)", raw.stored, raw.elapsed.Round(time.Millisecond)))
	row(w, "latency publish → consume", quantiles(&raw.latency), fmt.Sprintf("(at %.0f msgs/s, %d consumed)", raw.latRate, raw.consumed))
	row(w, "relay pattern stores/s", fmt.Sprintf("%.0f", raw.pairRate()),
		fmt.Sprintf("(synchronous compare-and-swap publish, %d workers: the relay's storage alone)", raw.workers))
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

func quantiles(h *histogram) string {
	if h.count.Load() == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p99 %s  p99.9 %s", ms(h.quantile(0.50)), ms(h.quantile(0.99)), ms(h.quantile(0.999)))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func verdictText(d *driver) string {
	var parts []string
	for v, name := range verdictNames {
		parts = append(parts, fmt.Sprintf("%s %d", name, d.verdicts[v].Load()))
	}
	return strings.Join(parts, ", ")
}
