package metrics

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// family is one metric name: its HELP and TYPE and its series, one per
// set of label values.
type family struct {
	name   string
	help   string
	kind   Kind
	labels []string
	mu     sync.Mutex
	series map[string]*series
}

type series struct {
	values []string
	read   func() float64
}

// key joins label values into a map key; it panics when their number does
// not match the family's label names.
func (f *family) key(values []string) string {
	if len(values) != len(f.labels) {
		panic(fmt.Sprintf("metrics: %s has %d label names, got %d values", f.name, len(f.labels), len(values)))
	}
	return strings.Join(values, "\xff")
}

func (f *family) set(values []string, read func() float64) {
	k := f.key(values)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.series[k] = &series{values: append([]string(nil), values...), read: read}
}

func (f *family) sortedSeries() []*series {
	f.mu.Lock()
	defer f.mu.Unlock()
	keys := make([]string, 0, len(f.series))
	for k := range f.series {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*series, len(keys))
	for i, k := range keys {
		out[i] = f.series[k]
	}
	return out
}

// WriteText writes every metric in the text exposition format, families
// in name order and series in label-value order. A labelled family with no
// series yet is left out, as the reference client does.
func (r *Registry) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, f := range r.sorted() {
		ss := f.sortedSeries()
		if len(ss) == 0 {
			continue
		}
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", f.name, escapeHelp(f.help), f.name, f.kind)
		for _, s := range ss {
			bw.WriteString(f.name)
			writeLabels(bw, f.labels, s.values)
			bw.WriteByte(' ')
			bw.WriteString(formatValue(s.read()))
			bw.WriteByte('\n')
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("metrics: write: %w", err)
	}
	return nil
}

func writeLabels(w *bufio.Writer, names, values []string) {
	if len(names) == 0 {
		return
	}
	w.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteString(n)
		w.WriteString(`="`)
		w.WriteString(labelEscaper.Replace(values[i]))
		w.WriteByte('"')
	}
	w.WriteByte('}')
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string { return helpEscaper.Replace(s) }

// formatValue writes integers in full and other values in the shortest
// form that reads back exactly, with Prometheus's spellings of the
// infinities and NaN.
func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
