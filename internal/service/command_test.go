package service

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

type testConfig struct {
	Logging
	fail bool
}

func parseTest(args []string, getenv func(string) string) (*testConfig, error) {
	cfg := &testConfig{}
	fs := flag.NewFlagSet("svc", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.Logging.Flags(fs)
	fs.BoolVar(&cfg.fail, "fail", false, "make serve fail")
	return cfg, fs.Parse(args)
}

func serveTest(ctx context.Context, cfg *testConfig, log zerolog.Logger) error {
	if cfg.fail {
		return errors.New("broken")
	}
	log.Info().Msg("serving")
	return nil
}

// TestCommandRun: the exit status and output of each way a service
// binary ends.
func TestCommandRun(t *testing.T) {
	cmd := Command[*testConfig]{Name: "svc", Help: "svc: a test service\n", Parse: parseTest, Serve: serveTest}
	for _, c := range []struct {
		args       []string
		code       int
		out, inErr string
	}{
		{[]string{"--help"}, 0, "svc: a test service", ""},
		{[]string{"--nope"}, 2, "", "Run 'svc --help' for usage."},
		{[]string{"--log-level", "loud"}, 2, "", "svc: "},
		{[]string{"--log-format", "json"}, 0, "", `"message":"stopped cleanly"`},
		{[]string{"--log-format", "json", "--fail"}, 1, "", `"message":"svc stopped"`},
	} {
		var out, errOut bytes.Buffer
		code := cmd.Run(t.Context(), c.args, func(string) string { return "" }, &out, &errOut)
		if code != c.code || !strings.Contains(out.String(), c.out) || !strings.Contains(errOut.String(), c.inErr) {
			t.Errorf("svc %v: exit %d, stdout %q, stderr %q; want exit %d, %q on stdout, %q on stderr",
				c.args, code, out.String(), errOut.String(), c.code, c.out, c.inErr)
		}
	}
}

// TestHealthWait: `health --wait` polls /readyz until the service is
// ready, or says after how long it gave up and why; without --wait it
// tries once.
func TestHealthWait(t *testing.T) {
	var calls, readyAfter atomic.Int32
	readyAfter.Store(3)
	srv, err := Listen(Config{Addr: "127.0.0.1:0", Log: zerolog.Nop(), Ready: func() error {
		if calls.Add(1) <= readyAfter.Load() {
			return errors.New("replaying the log")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	cmd := Command[*testConfig]{Name: "svc", Help: "svc\n", HTTP: srv.Addr(), Parse: parseTest, Serve: serveTest}
	health := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := cmd.Run(t.Context(), append([]string{"health"}, args...), func(string) string { return "" }, &out, &errOut)
		return code, out.String(), errOut.String()
	}

	if code, _, errOut := health(); code != 1 || !strings.Contains(errOut, "not ready: replaying the log") || calls.Load() != 1 {
		t.Errorf("without --wait: exit %d %q after %d tries, want 1 after one", code, errOut, calls.Load())
	}
	if code, out, errOut := health("--wait", "10s"); code != 0 || out != "ready\n" || calls.Load() != readyAfter.Load()+1 {
		t.Errorf("--wait 10s: exit %d %q %q after %d tries, want ready after %d", code, out, errOut, calls.Load(), readyAfter.Load()+1)
	}
	calls.Store(0)
	readyAfter.Store(1 << 30)
	start := time.Now()
	code, _, errOut := health("--wait", "700ms")
	if took := time.Since(start); code != 1 || !strings.Contains(errOut, "not ready after 700ms") || !strings.Contains(errOut, "replaying the log") ||
		took < 500*time.Millisecond || took > 5*time.Second || calls.Load() < 2 {
		t.Errorf("never ready, --wait 700ms: exit %d %q after %v and %d tries", code, errOut, took, calls.Load())
	}
	for _, bad := range [][]string{{"--wait", "-1s"}, {"--timeout", "0s"}, {"extra"}} {
		if code, _, errOut := health(bad...); code != 2 || !strings.Contains(errOut, "[--wait DUR]") {
			t.Errorf("health %v: exit %d %q, want 2 and the usage", bad, code, errOut)
		}
	}
}
