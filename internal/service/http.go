// Package service is what every Communicator service binary (keyserver,
// gateway, relay) shares around its own work: the HTTP listener for
// /metrics, /healthz and /readyz with graceful shutdown, flags that fall
// back to COMM_* environment variables, zerolog set-up, and a NATS
// connection that waits for the server and reconnects forever.
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/internal/metrics"
)

// DefaultShutdownTimeout bounds a graceful shutdown of the HTTP listener.
const DefaultShutdownTimeout = 5 * time.Second

// Config configures the HTTP listener.
type Config struct {
	// Addr is the listen address ("127.0.0.1:9100"); port 0 picks a free one.
	Addr string
	// Metrics is served on /metrics (nil: nothing but the Go runtime's and
	// the process's metrics): a registry of metrics.NewRegistry.
	Metrics prometheus.Gatherer
	// Ready reports readiness for /readyz: nil when ready, otherwise why
	// not. It must be quick. A nil Ready is always ready.
	Ready func() error
	// Log receives the listener's errors.
	Log zerolog.Logger
}

// Handler returns the endpoints without a listener:
//
//	GET /metrics  the registry in the Prometheus exposition format (promhttp)
//	GET /healthz  liveness: 200 "ok" while the process serves HTTP
//	GET /readyz   readiness: 200 "ok", or 503 "not ready: <reason>"
func Handler(cfg Config) http.Handler {
	reg := cfg.Metrics
	if reg == nil {
		reg = metrics.NewRegistry()
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: promLogger{cfg.Log}, ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		text(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if cfg.Ready != nil {
			if err := cfg.Ready(); err != nil {
				text(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
				return
			}
		}
		text(w, http.StatusOK, "ok")
	})
	return mux
}

// promLogger logs what promhttp could not gather: /metrics still serves
// the rest.
type promLogger struct{ log zerolog.Logger }

func (l promLogger) Println(v ...any) { l.log.Warn().Msg(fmt.Sprint(v...)) }

func text(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	io.WriteString(w, body+"\n")
}

// Server is a running HTTP listener.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	err  error // Serve's error, set before done is closed
}

// Listen binds cfg.Addr and serves Handler(cfg) on it in the background.
func Listen(cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("service: http listener: %w", err)
	}
	s := &Server{ln: ln, done: make(chan struct{}), srv: &http.Server{
		Handler:           Handler(cfg),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          log.New(cfg.Log, "http: ", 0),
	}}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.err = err
		}
	}()
	return s, nil
}

// Addr is the address the listener is bound to.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops accepting connections and waits for the requests in
// flight, until ctx ends; then it closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("service: http shutdown: %w", err), s.srv.Close())
	}
	<-s.done
	if s.err != nil {
		err = errors.Join(err, fmt.Errorf("service: http: %w", s.err))
	}
	return err
}

// Probe GETs path on the listener at addr and returns nil on 200 OK, or
// the status and body otherwise: the health check of images that have no
// shell and no curl. An unspecified host (":9100", "0.0.0.0:9100") is
// probed on loopback.
func Probe(ctx context.Context, addr, path string) error {
	url := "http://" + probeHost(addr) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("service: probe: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("service: probe %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("service: %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

func probeHost(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}
