package audit_test

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/keyserver/audit"
)

// TestHTML: the page has the header, one timeline row per member with a
// bar per span, a labelled line per epoch, the tables and the footer; it
// fetches nothing and runs nothing, and a hostile reason in the log is
// shown as text.
func TestHTML(t *testing.T) {
	w := history(t)
	hostile := `<script>alert("x")</script> & <b>`
	if _, err := w.k.RemoveMembers(t.Context(), keyserver.Actor{Key: [32]byte{0xaa}}, "ops", []string{"bob"}, hostile); err != nil {
		t.Fatal(err)
	}
	r, err := audit.Run(t.Context(), w.js, w.ks.Public(), "ops", nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, bad := range []string{"<script", "<b>", "src=", "href=", "url(", "@import", "http://", "https://"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	for _, want := range []string{"<h1>Group ops</h1>", r.Group, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;",
		"members_removed by operator aa000000…", r.Verified.HeadHash, "Verified: 5 group events"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	svg := checkSVG(t, page)
	if n := strings.Count(svg, "<rect "); n != 3 {
		t.Errorf("%d bars, want 3 (alice, bob, carol: one span each)", n)
	}
	for _, e := range r.Epochs {
		if !strings.Contains(svg, fmt.Sprintf("<g><title>epoch %d from %s UTC", e.Number, e.Start.Format(time.DateTime))) {
			t.Errorf("no line for epoch %d", e.Number)
		}
	}
	if !strings.Contains(svg, ">e1<") {
		t.Error("the first epoch's line has no label")
	}
	for _, who := range []string{">alice<", ">bob<", ">carol<"} {
		if !strings.Contains(svg, who) {
			t.Errorf("no row %s", who)
		}
	}
}

// checkSVG returns the page's one inline SVG after checking that it is
// well-formed XML.
func checkSVG(t *testing.T, page string) string {
	t.Helper()
	svg := regexp.MustCompile(`(?s)<svg .*</svg>`).FindString(page)
	if svg == "" || strings.Count(page, "<svg") != 1 {
		t.Fatal("no single inline <svg>")
	}
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return svg
		}
		if err != nil {
			t.Fatalf("svg is not well-formed: %v", err)
		}
	}
}

// TestHTMLChartGeometry: spans map onto the time axis, a deleted group's
// chart ends at its deletion, and crowded epoch labels move up a row or
// are left to the hover title.
func TestHTMLChartGeometry(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(h int) *time.Time { v := t0.Add(time.Duration(h) * time.Hour); return &v }
	r := &audit.Report{Group: "00112233445566778899aabbccddeeff", Name: "g", Created: t0, CreatedBy: "keyserver",
		Deleted: at(100), Until: *at(1000),
		Members: []audit.Member{{Client: "c1", Name: "alice", Spans: []audit.Span{{From: *at(0), To: at(50), FromEpoch: 1, ToEpoch: 1}}},
			{Client: "c2", Name: "bob", Spans: []audit.Span{{From: *at(50), To: at(100), FromEpoch: 2, ToEpoch: 5}}}},
	}
	for i := range 5 {
		r.Epochs = append(r.Epochs, audit.Epoch{Number: uint32(i + 1), Start: *at(50 + i), Cause: "group.rekeyed", By: "keyserver"})
	}
	r.Epochs[0].Start = t0
	var b bytes.Buffer
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	svg := checkSVG(t, b.String())
	// the plot runs from x=170 to x=980 over 100 hours: 8.1 units an hour.
	for _, want := range []string{`x="170" y="50" width="405"`, `x="575" y="72" width="405"`,
		`>e1<`, `>e2<`, `>e3<`, `>e4<`, "deleted 2025-01-05 04:00:00 UTC"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("page lacks %s\n%s", want, svg)
		}
	}
	if strings.Contains(svg, ">e5<") {
		t.Error("the fourth crowded label is drawn; want it only in its title")
	}
	if !strings.Contains(svg, "epoch 5 from 2025-01-03 06:00:00 UTC") {
		t.Error("epoch 5 has no hover title")
	}
}
