package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestShort runs the CI mode end to end (a real stack, real TCP clients)
// and checks that the table is printed with non-zero figures; it asserts
// nothing about timing.
func TestShort(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"--short", "--dir", t.TempDir()}
	if code := run(t.Context(), args, &out, &errOut); code != 0 {
		t.Fatalf("commload --short: exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	table := out.String()
	for _, row := range []string{"accepted messages/s", "delivered copies/s", "async publish msgs/s"} {
		if v := figure(t, table, row); v <= 0 {
			t.Errorf("%s is %v\n%s", row, v, table)
		}
	}
	for _, want := range []string{"JetStream sync always", "latency send → delivery    p50", "latency publish → consume  p50"} {
		if !strings.Contains(table, want) {
			t.Errorf("the table has no %q:\n%s", want, table)
		}
	}
	if !strings.Contains(errOut.String(), "measure  sent") {
		t.Errorf("no progress lines on stderr:\n%s", errOut.String())
	}
}

// figure is the number after label in the table.
func figure(t *testing.T, table, label string) float64 {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(label) + `\s+([0-9.]+)`).FindStringSubmatch(table)
	if m == nil {
		t.Fatalf("no %q row in\n%s", label, table)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func TestFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--clients", "3", "--groups", "2"}, "each group needs at least 2 members"},
		{[]string{"--sync", "sometimes"}, "want always or a positive interval"},
		{[]string{"--size", "4"}, "--size must be between"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		var out, errOut bytes.Buffer
		if code := run(t.Context(), c.args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("commload %v: exit %d, %q; want exit 2 and %q", c.args, code, errOut.String(), c.want)
		}
	}
	o, err := parseFlags([]string{"--short", "--clients", "10", "--sync", "1m"}, &bytes.Buffer{})
	if err != nil || o.clients != 10 || o.groups != 4 || o.duration != 3*time.Second || o.sync.Interval() != time.Minute {
		t.Errorf("--short with --clients 10 --sync 1m gave %+v, %v", o, err)
	}
}
