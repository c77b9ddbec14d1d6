// Package prometheus_test runs the real Prometheus (Debian's package)
// against a running stack with the rules and the dashboard of this
// folder: every rule evaluates without error, every recording rule
// produces series, and every panel's query runs. promtool test rules
// (tests/) checks what each rule computes; this checks that the rules
// fit the metrics the services really expose.
package prometheus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/internal/stack"
)

// scrapeEvery is the scrape and rule evaluation interval of the test's
// Prometheus: short, so that rates have their two samples within seconds.
const scrapeEvery = time.Second

// TestRulesOnLiveStack starts a stack on loopback (free ports, a
// temporary data directory), makes traffic that every metric the rules
// read has a series for, and starts Prometheus scraping the stack with
// the rules loaded. It checks through Prometheus's HTTP API that the
// stack is scraped, that every recording rule produces series, that then
// every rule (recording and alerting) has evaluated without error, and
// that every query of the dashboard runs and returns series.
func TestRulesOnLiveStack(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("no prometheus binary on PATH: install Debian's package (apt-get install prometheus), as .ci/run does")
	}
	s := startStack(t)
	makeTraffic(t, s)
	p := startPrometheus(t, bin, s.HTTPAddr())

	natstest.CheckFor(t, 30*time.Second, 200*time.Millisecond, p.targetUp)
	recording := p.ruleNames(t, "recording")
	if len(recording) == 0 {
		t.Fatal("Prometheus loaded no recording rule")
	}
	natstest.CheckFor(t, 60*time.Second, 500*time.Millisecond, func() error {
		for _, name := range recording {
			if n, err := p.series(name); err != nil || n == 0 {
				return fmt.Errorf("recording rule %s: %d series, %v", name, n, err)
			}
		}
		return nil
	})
	// Every rule evaluates again now that every series exists: a rule that
	// fails only on data (a many-to-many match, duplicate alert labels)
	// fails here.
	since := time.Now()
	natstest.CheckFor(t, 30*time.Second, 500*time.Millisecond, func() error { return p.evaluatedSince(since) })
	rules := p.rules(t)
	alerts := 0
	for _, r := range rules {
		if r.Health != "ok" || r.LastError != "" {
			t.Errorf("%s rule %s: health %q, error %q", r.Type, r.Name, r.Health, r.LastError)
		}
		if r.Type == "alerting" {
			alerts++
			if r.State != "inactive" {
				t.Logf("alert %s is %s on the test stack", r.Name, r.State)
			}
		}
	}
	t.Logf("%d recording rules produce series; %d rules evaluated, %d of them alerts", len(recording), len(rules), alerts)
	checkDashboard(t, p)
}

// startStack starts the whole stack in this process, as commstack does,
// on free loopback ports and a temporary data directory.
func startStack(t *testing.T) *stack.Stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, stack.Config{DataDir: t.TempDir(), Gateway: "127.0.0.1:0", NATSListen: "127.0.0.1:0",
		HTTP: "127.0.0.1:0", SyncInterval: time.Second, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// prometheus is a running Prometheus and its HTTP API.
type prometheus struct {
	base string // http://127.0.0.1:PORT
	log  string // its log file
}

// startPrometheus starts bin scraping target every scrapeEvery with the
// rules of this folder, and waits until it is ready. It stops it at the
// end of the test.
func startPrometheus(t *testing.T, bin, target string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs("communicator.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf("global:\n  scrape_interval: %[1]s\n  evaluation_interval: %[1]s\n"+
		"rule_files:\n  - %[2]q\n"+
		"scrape_configs:\n  - job_name: communicator\n    static_configs:\n      - targets: [%[3]q]\n",
		scrapeEvery, rules, target)
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		p, err := launch(t, bin, configFile, dir)
		if err == nil {
			return p
		}
		if attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("attempt %d: %v", attempt, err)
	}
}

// launch starts Prometheus on a free port (another process may take it
// between our probe and Prometheus's bind: the caller tries again).
func launch(t *testing.T, bin, configFile, dir string) (*prometheus, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logFile, err := os.CreateTemp(dir, "prometheus-*.log")
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "--config.file="+configFile, "--storage.tsdb.path="+filepath.Join(dir, filepath.Base(logFile.Name())+".data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	p := &prometheus{base: "http://" + addr, log: logFile.Name()}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("prometheus exited: %v\n%s", err, p.logText())
		case <-deadline:
			cmd.Process.Kill()
			<-exited
			return nil, fmt.Errorf("prometheus not ready within 30 s\n%s", p.logText())
		case <-time.After(100 * time.Millisecond):
		}
		if resp, err := http.Get(p.base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("prometheus's log:\n%s", p.logText())
		}
	})
	return p, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (p *prometheus) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// get calls the API at path with query parameters q and decodes the data
// of a successful answer into out.
func (p *prometheus) get(path string, q url.Values, out any) error {
	resp, err := http.Get(p.base + path + "?" + q.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status    string          `json:"status"`
		Error     string          `json:"error"`
		ErrorType string          `json:"errorType"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("%s: %s: %w", path, resp.Status, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("%s: %s: %s", path, body.ErrorType, body.Error)
	}
	return json.Unmarshal(body.Data, out)
}

// targetUp is nil once the stack's /metrics has been scraped.
func (p *prometheus) targetUp() error {
	var data struct {
		ActiveTargets []struct {
			ScrapeURL string `json:"scrapeUrl"`
			Health    string `json:"health"`
			LastError string `json:"lastError"`
		} `json:"activeTargets"`
	}
	if err := p.get("/api/v1/targets", nil, &data); err != nil {
		return err
	}
	if len(data.ActiveTargets) != 1 {
		return fmt.Errorf("%d targets, want 1", len(data.ActiveTargets))
	}
	if tg := data.ActiveTargets[0]; tg.Health != "up" {
		return fmt.Errorf("target %s: %s %s", tg.ScrapeURL, tg.Health, tg.LastError)
	}
	return nil
}

// rule is one rule as /api/v1/rules reports it.
type rule struct {
	Name           string    `json:"name"`
	Type           string    `json:"type"` // recording or alerting
	Health         string    `json:"health"`
	LastError      string    `json:"lastError"`
	State          string    `json:"state"` // alerting: inactive, pending, firing
	LastEvaluation time.Time `json:"lastEvaluation"`
}

func (p *prometheus) fetchRules() ([]rule, error) {
	var data struct {
		Groups []struct {
			Rules []rule `json:"rules"`
		} `json:"groups"`
	}
	if err := p.get("/api/v1/rules", nil, &data); err != nil {
		return nil, err
	}
	var out []rule
	for _, g := range data.Groups {
		out = append(out, g.Rules...)
	}
	return out, nil
}

func (p *prometheus) rules(t *testing.T) []rule {
	t.Helper()
	rules, err := p.fetchRules()
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

func (p *prometheus) ruleNames(t *testing.T, kind string) []string {
	t.Helper()
	var out []string
	for _, r := range p.rules(t) {
		if r.Type == kind {
			out = append(out, r.Name)
		}
	}
	return out
}

// evaluatedSince is nil once every rule has been evaluated after t.
func (p *prometheus) evaluatedSince(t time.Time) error {
	rules, err := p.fetchRules()
	if err != nil {
		return err
	}
	for _, r := range rules {
		if !r.LastEvaluation.After(t) {
			return fmt.Errorf("rule %s last evaluated at %v", r.Name, r.LastEvaluation)
		}
	}
	return nil
}

// series runs an instant query and returns how many series it gave.
func (p *prometheus) series(query string) (int, error) {
	var data struct {
		Result []json.RawMessage `json:"result"`
	}
	if err := p.get("/api/v1/query", url.Values{"query": {query}}, &data); err != nil {
		return 0, err
	}
	return len(data.Result), nil
}

// checkDashboard runs the query of every panel of dashboard.json, with
// every job selected, and wants series from each.
func checkDashboard(t *testing.T, p *prometheus) {
	t.Helper()
	data, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	queries := 0
	for _, panel := range d.Panels {
		for _, target := range panel.Targets {
			q := strings.ReplaceAll(target.Expr, "$job", ".+")
			if n, err := p.series(q); err != nil || n == 0 {
				t.Errorf("panel %q: %s: %d series, %v", panel.Title, q, n, err)
			}
			queries++
		}
	}
	if queries == 0 {
		t.Error("the dashboard has no query")
	}
}
