package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
)

// describe says what the run measures on: the machine, the versions and
// the fsync policy.
func describe(o *options) string {
	mode := "full run"
	if o.short {
		mode = "--short run (small counts: the figures are not comparable)"
	}
	return fmt.Sprintf("commbench %s: %s, %d cores (GOMAXPROCS %d), %s memory; load average %s\n"+
		"%s, nats-server %s, nats.go %s; JetStream %s",
		mode, cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), memTotal(), loadAvg(),
		runtime.Version(), moduleVersion("github.com/nats-io/nats-server/v2"), moduleVersion("github.com/nats-io/nats.go"),
		o.syncPolicy())
}

func argsText(args []string) string {
	if len(args) == 0 {
		return "(no flags)"
	}
	return strings.Join(args, " ")
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	if v := procField("/proc/cpuinfo", "model name", ":"); v != "" {
		return v
	}
	return runtime.GOARCH
}

func memTotal() string {
	v := procField("/proc/meminfo", "MemTotal", ":")
	var kb int64
	if _, err := fmt.Sscanf(v, "%d kB", &kb); err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// procField returns the value of the first line of a /proc file that
// starts with key, after sep, trimmed ("" if none).
func procField(path, key, sep string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if k, v, ok := strings.Cut(line, sep); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// moduleVersion is the version of a dependency built into this binary.
func moduleVersion(path string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, m := range info.Deps {
		if m.Path == path {
			if m.Replace != nil {
				return m.Replace.Version
			}
			return m.Version
		}
	}
	return "unknown"
}
