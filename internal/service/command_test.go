package service

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

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
