package cmdtest

import (
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Scrape GETs url (a service's /metrics) as a scraper that asks for the
// text format would, checks that the answer parses, and returns it with
// its families by name.
func Scrape(t *testing.T, url string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	code, text := Get(t, url)
	if code != 200 {
		t.Fatalf("%s: status %d: %s", url, code, text)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("%s does not parse: %v\n%s", url, err, text)
	}
	return text, families
}

// CheckRuntime checks that a scrape has the Go runtime's and the
// process's metrics.
func CheckRuntime(t *testing.T, families map[string]*dto.MetricFamily) {
	t.Helper()
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "go_gc_duration_seconds",
		"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"} {
		if families[name] == nil {
			t.Errorf("no %s in the scrape", name)
		}
	}
}

// Observations is how many observations the histogram name holds, over
// all its series; the test fails if the scrape has no such histogram or
// a series of it without _bucket lines up to +Inf.
func Observations(t *testing.T, text string, families map[string]*dto.MetricFamily, name string) uint64 {
	t.Helper()
	f := families[name]
	switch {
	case f == nil:
		t.Errorf("no histogram %s in the scrape", name)
		return 0
	case f.GetType() != dto.MetricType_HISTOGRAM:
		t.Errorf("%s is a %v, not a histogram", name, f.GetType())
		return 0
	case !strings.Contains(text, "\n"+name+"_bucket{") || !strings.Contains(text, `le="+Inf"}`):
		t.Errorf("no %s_bucket series in the scrape", name)
	}
	var n uint64
	for _, m := range f.GetMetric() {
		if len(m.GetHistogram().GetBucket()) == 0 {
			t.Errorf("%s %v has no buckets", name, m.GetLabel())
		}
		n += m.GetHistogram().GetSampleCount()
	}
	return n
}
