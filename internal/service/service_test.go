package service_test

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/internal/metrics"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/internal/service"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestEndpoints: liveness always, readiness from the callback with the
// reason on 503, metrics from the registry; then a graceful shutdown.
func TestEndpoints(t *testing.T) {
	reg := metrics.NewRegistry()
	promauto.With(reg).NewCounter(prometheus.CounterOpts{Name: "comm_test_total", Help: "A test counter."}).Add(3)
	var notReady atomic.Value
	notReady.Store("state not loaded")
	srv, err := service.Listen(service.Config{Addr: "127.0.0.1:0", Metrics: reg, Ready: func() error {
		if why := notReady.Load().(string); why != "" {
			return errors.New(why)
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + srv.Addr()
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || body != "not ready: state not loaded\n" {
		t.Errorf("readyz before: %d %q", code, body)
	}
	if err := service.Probe(t.Context(), srv.Addr(), "/readyz"); err == nil || !strings.Contains(err.Error(), "state not loaded") {
		t.Errorf("probe of an unready service: %v", err)
	}
	notReady.Store("")
	if code, body := get(t, base+"/readyz"); code != 200 || body != "ok\n" {
		t.Errorf("readyz after: %d %q", code, body)
	}
	if err := service.Probe(t.Context(), srv.Addr(), "/readyz"); err != nil {
		t.Errorf("probe of a ready service: %v", err)
	}
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "\ncomm_test_total 3\n") {
		t.Errorf("metrics: %d %q", code, body)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := service.Probe(t.Context(), srv.Addr(), "/healthz"); err == nil {
		t.Error("probe succeeded after shutdown")
	}
}

func TestProbeUnspecifiedHost(t *testing.T) {
	srv, err := service.Listen(service.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(t.Context())
	port := srv.Addr()[strings.LastIndexByte(srv.Addr(), ':'):]
	if err := service.Probe(t.Context(), port, "/healthz"); err != nil {
		t.Errorf("probe of %s: %v", port, err)
	}
}

func TestListenError(t *testing.T) {
	if _, err := service.Listen(service.Config{Addr: "127.0.0.1:99999"}); err == nil {
		t.Fatal("listened on port 99999")
	}
}

// TestApplyEnv: a flag given on the command line (in either flag set) wins
// over its variable, the variable over the default.
func TestApplyEnv(t *testing.T) {
	var url, key string
	var n int
	global := flag.NewFlagSet("g", flag.ContinueOnError)
	global.StringVar(&url, "nats", "nats://default", "")
	sub := flag.NewFlagSet("s", flag.ContinueOnError)
	sub.StringVar(&url, "nats", "nats://default", "")
	sub.StringVar(&key, "key", "default.key", "")
	sub.IntVar(&n, "replicas", 1, "")
	if err := global.Parse([]string{"--nats", "nats://flag"}); err != nil {
		t.Fatal(err)
	}
	if err := sub.Parse(nil); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"COMM_NATS_URL": "nats://env", "COMM_KEY": "env.key", "COMM_REPLICAS": "3"}
	vars := map[string]string{"nats": "COMM_NATS_URL", "key": "COMM_KEY", "replicas": "COMM_REPLICAS"}
	if err := service.ApplyEnv(sub, vars, func(k string) string { return env[k] }, global); err != nil {
		t.Fatal(err)
	}
	if url != "nats://flag" || key != "env.key" || n != 3 {
		t.Errorf("got nats=%s key=%s replicas=%d", url, key, n)
	}
	env["COMM_REPLICAS"] = "three"
	fresh := flag.NewFlagSet("f", flag.ContinueOnError)
	fresh.IntVar(&n, "replicas", 1, "")
	err := service.ApplyEnv(fresh, vars, func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "COMM_REPLICAS") {
		t.Errorf("bad variable: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{"7d": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour, "90m": 90 * time.Minute, "0s": 0}
	for s, want := range good {
		if got, err := service.ParseDuration(s); err != nil || got != want {
			t.Errorf("%s: %v %v", s, got, err)
		}
	}
	for _, s := range []string{"", "d", "xd", "7days", "-1h", "1d-1h", "soon"} {
		if _, err := service.ParseDuration(s); err == nil {
			t.Errorf("%q parsed", s)
		}
	}
	d := service.Duration(7 * 24 * time.Hour)
	if d.String() != "7d" {
		t.Errorf("String %q", d.String())
	}
}

func TestNewLogger(t *testing.T) {
	var b strings.Builder
	log, err := service.NewLogger(&b, "warn", "")
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Msg("hidden")
	log.Warn().Msg("shown")
	if !strings.HasPrefix(b.String(), `{"level":"warn"`) || strings.Contains(b.String(), "hidden") {
		t.Errorf("log %q (want JSON when not a terminal, at warn)", b.String())
	}
	for _, c := range [][2]string{{"loud", ""}, {"", "xml"}} {
		if _, err := service.NewLogger(&b, c[0], c[1]); err == nil {
			t.Errorf("level %q format %q accepted", c[0], c[1])
		}
	}
}

func TestConnectNATS(t *testing.T) {
	s := natstest.Start(t)
	nc, err := service.ConnectNATS(t.Context(), service.NATSClient{URL: s.ClientURL(), Creds: s.CredsFile(natsauth.Relay)}, "comm-relay", quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := service.NATSReady(nc); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := service.ConnectNATS(ctx, service.NATSClient{URL: "nats://127.0.0.1:1"}, "test", quiet()); err == nil {
		t.Fatal("connected to nothing")
	}
	if _, err := service.ConnectNATS(t.Context(), service.NATSClient{URL: s.ClientURL(), Creds: "/nonexistent.creds"}, "test", quiet()); err == nil {
		t.Fatal("missing credentials file accepted")
	}
}

// TestConnectNATSTLS: with --nats-ca a service reaches a TLS server whose
// certificate that CA signed, even from a nats:// URL; it keeps trying a
// server whose certificate another CA signed, and says why once; a CA
// file that holds no certificate is refused before any connection.
func TestConnectNATSTLS(t *testing.T) {
	s := natstest.StartTLS(t)
	c := service.NATSClient{URL: s.ClientURL(), Creds: s.CredsFile(natsauth.Relay), CA: s.CAFile}
	nc, err := service.ConnectNATS(t.Context(), c, "comm-relay", quiet())
	if err != nil {
		t.Fatal(err)
	}
	if !nc.TLSRequired() {
		t.Error("connected without TLS")
	}
	nc.Close()

	other := natstest.StartTLS(t)
	var log lockedBuilder // ConnectNATS logs from the caller and from nats.go's callbacks at once
	logger, _ := service.NewLogger(&log, "info", "json")
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	if _, err := service.ConnectNATS(ctx, service.NATSClient{URL: s.ClientURL(), Creds: c.Creds, CA: other.CAFile}, "comm-relay", logger); err == nil {
		t.Fatal("trusted a server certificate of another CA")
	}
	if n := strings.Count(log.String(), "certificate signed by unknown authority"); n != 1 {
		t.Errorf("the certificate error is logged %d times, want once:\n%s", n, log.String())
	}

	if _, err := service.ConnectNATS(t.Context(), service.NATSClient{URL: s.ClientURL(), CA: s.CredsFile(natsauth.Relay)}, "test", quiet()); err == nil ||
		!strings.Contains(err.Error(), "--nats-ca") || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a seed file as the CA: %v", err)
	}
	if _, err := service.ConnectNATS(t.Context(), service.NATSClient{URL: s.ClientURL(), CA: "/nonexistent/ca.pem"}, "test", quiet()); err == nil ||
		!strings.Contains(err.Error(), "--nats-ca /nonexistent/ca.pem") {
		t.Errorf("a missing CA file: %v", err)
	}
}

func TestCheckNATSURL(t *testing.T) {
	for _, u := range []string{"nats://127.0.0.1:4222", "tls://a:1,nats://b:2"} {
		if err := service.CheckNATSURL(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"", "127.0.0.1:4222", "http://a:1", "nats://"} {
		if err := service.CheckNATSURL(u); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}

func quiet() zerolog.Logger { return zerolog.Nop() }

// lockedBuilder is a strings.Builder safe for concurrent writers, as the
// log's os.Stderr is.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
