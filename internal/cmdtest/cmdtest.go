// Package cmdtest holds what the tests of the service binaries share:
// a log sink they can search, an environment from a map, an HTTP GET,
// the wait for a clean exit, and the checks of readiness while NATS is
// out of reach and through the loss of JetStream.
package cmdtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commsec/communicator/internal/natstest"
)

// Log collects what a command writes to its standard error; it is safe
// for concurrent use.
type Log struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Field waits up to 20 s for the JSON log line whose message is msg and
// returns one of its fields (numbers as their JSON text).
func (l *Log) Field(t *testing.T, msg, field string) string {
	t.Helper()
	var v string
	natstest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		for line := range strings.SplitSeq(l.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["message"] == msg {
				v = fmt.Sprint(m[field])
				return nil
			}
		}
		return fmt.Errorf("no log line %q in:\n%s", msg, l.String())
	})
	return v
}

// Env is a getenv over vars.
func Env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// Get returns the status and body of a GET of url.
func Get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Must ends the test on an error.
func Must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
