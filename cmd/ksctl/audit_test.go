package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/keyserver/audit"
	"github.com/commsec/communicator/streams"
)

// history gives ops a history through ksctl: alice, bob and carol join,
// carol leaves with a reason, a drill rekey.
func history(t *testing.T, reason string) *world {
	w := newWorld(t)
	for _, n := range []string{"alice", "bob", "carol"} {
		path, _ := w.client(n)
		w.ok("client", "register", path, "--name", n)
	}
	w.ok("group", "create", "ops")
	w.ok("group", "add", "ops", "alice", "bob", "carol")
	w.ok("group", "remove", "ops", "carol", "--reason", reason)
	w.ok("group", "rekey", "ops", "--reason", "drill")
	return w
}

func TestAuditText(t *testing.T) {
	w := history(t, "left the team")
	out, errOut, code := w.ksctl("audit", "--nats-creds", w.srv.CredsFile(natsauth.Auditor), "ops")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	t.Logf("\n%s", out)
	for _, want := range []string{"Group ops", "Epochs (who held each key)", `members_removed: carol ("left the team")`,
		`rekeyed ("drill")`, "carol  epochs 1–1", "alice  epochs 1–", "Verified: 4 group events"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if !strings.Contains(errOut, "replaying events") || !strings.HasSuffix(errOut, "100%\n") {
		t.Errorf("progress on stderr: %q", errOut)
	}
}

func TestAuditJSON(t *testing.T) {
	w := history(t, "left the team")
	var r audit.Report
	must(t, json.Unmarshal([]byte(w.ok("audit", "--nats-creds", w.srv.CredsFile(natsauth.Auditor), "ops", "--json")), &r))
	if r.Name != "ops" || len(r.Epochs) != 3 || len(r.Members) != 3 || r.Epochs[1].Reason != "left the team" {
		t.Errorf("report: %+v", r)
	}
}

// TestAuditHTML: the page has the timeline chart and shows a hostile
// reason, given to `group remove --reason`, as text.
func TestAuditHTML(t *testing.T) {
	w := history(t, `<script>alert("pwned")</script>`)
	page := filepath.Join(t.TempDir(), "ops.html")
	out, errOut, code := w.ksctl("audit", "--nats-creds", w.srv.CredsFile(natsauth.Auditor), "ops", "--html", page)
	if code != 0 || !strings.Contains(out, "Group ops") || !strings.Contains(errOut, "wrote "+page) {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	data, err := os.ReadFile(page)
	must(t, err)
	html := string(data)
	if !strings.Contains(html, "<svg ") || !strings.Contains(html, "</svg>") {
		t.Error("no inline svg")
	}
	if strings.Contains(html, "<script") {
		t.Error("the hostile reason is live HTML")
	}
	if !strings.Contains(html, "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;") {
		t.Error("the hostile reason is not shown escaped")
	}
}

// TestAuditTampered: a group event, modified and re-published with a raw
// NATS publish, makes audit name the event first, then print the report
// marked as not verified, write the page showing the break, and exit 3.
func TestAuditTampered(t *testing.T) {
	w := history(t, "left the team")
	g := w.group("ops")
	subject := events.Subject(record.GroupAggregate(g.ID))
	js, _ := jetstream.New(w.nc)
	stream, _ := js.Stream(t.Context(), streams.Events)
	last, err := stream.GetLastMsgForSubject(t.Context(), subject)
	must(t, err)
	forged := bytes.Replace(last.Data, []byte("drill"), []byte("DRILL"), 1)
	ack, err := w.nc.Request(subject, forged, 5*time.Second) // JetStream answers a plain publish with its ack
	must(t, err)
	var pa struct{ Seq uint64 }
	must(t, json.Unmarshal(ack.Data, &pa))
	page := filepath.Join(t.TempDir(), "ops.html")
	out, errOut, code := w.ksctl("audit", "--nats-creds", w.srv.CredsFile(natsauth.Auditor), "ops", "--html", page)
	if code != 3 {
		t.Fatalf("exit %d, want 3\n%s%s", code, out, errOut)
	}
	want := fmt.Sprintf("TAMPERED OR BROKEN LOG: first broken event %d on %s: ", pa.Seq, subject)
	if first := firstLineAfterProgress(errOut); !strings.HasPrefix(first, want) {
		t.Errorf("stderr says first %q, want %q", first, want)
	}
	if !strings.HasPrefix(out, "VERIFICATION FAILED: ") || !strings.Contains(out, "Group ops") || strings.Contains(out, "Verified:") {
		t.Errorf("stdout does not say first that verification failed, or claims it:\n%s", out)
	}
	data, err := os.ReadFile(page)
	must(t, err)
	if !strings.Contains(string(data), "<strong>VERIFICATION FAILED</strong>") || !strings.Contains(errOut, "wrote "+page) {
		t.Errorf("the page does not show the break (stderr %q)", errOut)
	}
	t.Logf("\n%s%s", errOut, out)
}

func firstLineAfterProgress(s string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if !strings.HasPrefix(line, "replaying events") {
			return line
		}
	}
	return ""
}

func TestAuditErrors(t *testing.T) {
	w := history(t, "left the team")
	w.fails(1, `no such group in the log: "nope"`, "audit", "--nats-creds", w.srv.CredsFile(natsauth.Auditor), "nope")
	w.fails(1, "--keyserver-pub", "audit", "--nats-creds", w.srv.CredsFile(natsauth.Auditor), "ops", "--keyserver-pub", filepath.Join(w.dir, "missing.pub"))
	w.fails(1, "want a keyserver public key", "audit", "--nats-creds", w.srv.CredsFile(natsauth.Auditor), "ops", "--keyserver-pub", filepath.Join(w.dir, "operator.pub"))
	stranger := t.TempDir()
	runWith(t, nil, "init", "--dir", stranger)
	wrong := filepath.Join(stranger, "keyserver.pub")
	w.fails(1, "--keyserver-pub "+wrong+": audit: the log does not verify under keyserver key", "audit", "--nats-creds", w.srv.CredsFile(natsauth.Auditor), "ops", "--keyserver-pub", wrong)
	w.fails(2, "missing arguments", "audit")
}
