package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/commsec/communicator/internal/clusterstack"
	"github.com/commsec/communicator/streams"
)

// TestMain lets the test binary serve as the idle-clients child too: the
// idle figure re-executes os.Executable with the hidden subcommand.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == childCommand {
		os.Exit(idleChildMain(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestShort runs the CI mode end to end (a real stack, real TCP clients,
// child processes) and checks that the table has a measured row for every
// figure; it asserts nothing about the figures' values or timing.
func TestShort(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"--short", "--dir", t.TempDir()}, &out, &errOut); code != 0 {
		t.Fatalf("commbench --short: exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	table := out.String()
	for _, want := range []string{
		"| handshakes/s through the gateway",
		"| legitimate handshake p50 / p99 under 400 half-open handshakes from 4 sources",
		"| accepted messages/s at saturation",
		"| latency send → delivery",
		"| delivered copies/s at saturation",
		"| rekey of 100 members",
		"| rekey of 500 members",
		"| rekey of 500 members, beside storing its bundles alone",
		"| idle connections held by one gateway: 1,000",
		"| idle connections held by one gateway: 2,000",
		"| keyserver cold start from 20,000 events",
		"| keyserver first start from 20,000 events",
		"| projection memory (every relay and gateway): 5,000 clients, 10,000 memberships",
		"| raw JetStream CAS publishes/s on 3 nodes (R3)",
		"| raw JetStream CAS publishes/s on 3 nodes (R1)",
		"| per-gateway ingress, 2 gateways",
		"| reconnect storm: 300 caught-up clients",
		"| JetStream synced writes per accepted message (an atomic batch of cursors or leases is one), 100 clients in groups of 5",
		"| JetStream records stored per accepted message, 100 clients in groups of 5",
		"| latency send → delivery p50 / p99 / p99.9, 100 clients in groups of 5",
		"| relay failover:",
		"| relay rebalancing:",
	} {
		line := lineWith(table, want)
		switch {
		case line == "":
			t.Errorf("no row %q in\n%s", want, table)
		case strings.Contains(line, "error"), strings.Contains(line, "not run"), strings.Contains(line, "no samples"):
			t.Errorf("row not measured: %s", line)
		}
	}
	// K = 1 is measured on every build; the default K once natsauth has
	// an account for each shard.
	line := lineWith(table, "| accepted messages/s on 3 nodes, K = ")
	if line == "" || strings.Contains(line, "| error") || (strings.Contains(line, "not run") && clusterstack.ShardsSupported(streams.DefaultShards)) {
		t.Errorf("shards row not measured: %q", line)
	}
	if !strings.Contains(errOut.String(), "measure  sent") || !strings.Contains(errOut.String(), "handshakes ") {
		t.Errorf("no progress lines on stderr:\n%s", errOut.String())
	}
}

func lineWith(s, prefix string) string {
	for line := range strings.Lines(s) {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	return ""
}

func TestFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--only", "handshake,nope"}, `unknown figure "nope"`},
		{[]string{"--sync", "sometimes"}, "want always or a positive interval"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		var out, errOut bytes.Buffer
		if code := run(t.Context(), c.args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("commbench %v: exit %d, %q; want exit 2 and %q", c.args, code, errOut.String(), c.want)
		}
	}
	o, err := parseFlags([]string{"--only", "latency", "--sync", "1m"}, &bytes.Buffer{})
	if err != nil || !o.runs("sat2") || !o.runs("latency") || o.runs("handshake") || o.sync.Interval().Minutes() != 1 {
		t.Errorf("--only latency --sync 1m gave %+v, %v", o, err)
	}
}

func TestTable(t *testing.T) {
	var b bytes.Buffer
	printTable(&b, []row{
		newRow("a", "10/s", "20/s", 0.5, atLeast(0.5)),
		newRow("b", "1 ms", "2 ms", 0.5, atMost(0.4)),
		{figure: "c", goal: goal{limit: 10, unit: "KiB"}, verdict: "not run: file limit"},
	}, []string{"a note"})
	want := `| figure | ours | bound, same run | ratio | goal     | verdict             |
| ------ | ---- | --------------- | ----- | -------- | ------------------- |
| a      | 10/s | 20/s            | 0.50× | ≥ 0.5×   | met                 |
| b      | 1 ms | 2 ms            | 0.50× | ≤ 0.4×   | **missed**          |
| c      | —    | —               | —     | ≤ 10 KiB | not run: file limit |

Notes:
- a note
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}
