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

// TestHTMLChartGeometry: epochs are laid out in order, each at least 30
// units wide and the rest of the plot shared by duration; spans run from
// the start of their first epoch to the end of their last; a deleted
// group's chart ends at its deletion.
func TestHTMLChartGeometry(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(h int) *time.Time { v := t0.Add(time.Duration(h) * time.Hour); return &v }
	r := &audit.Report{Group: "00112233445566778899aabbccddeeff", Name: "g", Created: t0, CreatedBy: "keyserver",
		Deleted: at(100), Until: *at(1000),
		Members: []audit.Member{{Client: "c1", Name: "alice", Spans: []audit.Span{{From: *at(0), To: at(51), FromEpoch: 1, ToEpoch: 1}}},
			{Client: "c2", Name: "bob", Spans: []audit.Span{{From: *at(51), To: at(100), FromEpoch: 2, ToEpoch: 5}}}},
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
	// The plot runs from x=170 to x=980: 810 units, 5×30 for the epochs
	// and 660 shared over 100 hours, 6.6 an hour. Epoch 1 lasts 51 h
	// (366.6 units), 2 to 4 one hour each (36.6), 5 the last 46 (333.6).
	for _, want := range []string{`x="170" y="50" width="367"`, `x="537" y="72" width="443"`,
		`x1="573" x2="573"`, `x1="610" x2="610"`, `x1="646" x2="646"`,
		`>e1<`, `>e2<`, `>e3<`, `>e4<`, `>e5<`, "deleted 2025-01-05 04:00:00 UTC"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("page lacks %s\n%s", want, svg)
		}
	}
}

// TestHTMLSameSecondEpochs: epochs opened in the same second are still
// apart, their labels do not overlap, and each membership, even one that
// lasted less than a second, is as wide as the epochs it held; with more
// epochs than fit, labels that would overlap are left to the titles.
func TestHTMLSameSecondEpochs(t *testing.T) {
	for _, n := range []int{8, 40, 300} {
		r := sameSecond(n)
		var b bytes.Buffer
		if err := r.WriteHTML(&b); err != nil {
			t.Fatal(err)
		}
		svg := checkSVG(t, b.String())
		labels := elements(t, svg, "text", "elabel")
		if n <= 8 && len(labels) != n {
			t.Errorf("%d epochs: %d labels, want all", n, len(labels))
		}
		for i, a := range labels {
			for _, c := range labels[i+1:] {
				if a.y == c.y && a.x+a.w/2+2 > c.x-c.w/2 && c.x+c.w/2+2 > a.x-a.w/2 {
					t.Errorf("%d epochs: labels %s at %v and %s at %v overlap", n, a.text, a.x, c.text, c.x)
				}
			}
		}
		for _, bar := range elements(t, svg, "rect", "bar") {
			if bar.w < 4 {
				t.Errorf("%d epochs: a membership is %v units wide", n, bar.w)
			}
		}
		if bars := elements(t, svg, "rect", "bar"); n == 8 && (bars[1].w < 30 || bars[2].w < 30) {
			t.Errorf("the same-second memberships are %v and %v wide, want at least an epoch (30)", bars[1].w, bars[2].w)
		}
	}
}

// sameSecond is a group whose first n-1 epochs all open in the same
// second, an hour after its creation, followed by a day-long last epoch;
// alice holds every key, bob only the second epoch's, carol the third's
// and fourth's.
func sameSecond(n int) *audit.Report {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	burst := t0.Add(time.Hour)
	r := &audit.Report{Group: "00112233445566778899aabbccddeeff", Name: "burst", Created: t0, CreatedBy: "keyserver",
		Until: burst.Add(24 * time.Hour)}
	for i := range n {
		start := burst.Add(time.Duration(i) * time.Millisecond)
		if i == n-1 {
			start = burst.Add(time.Second)
		}
		r.Epochs = append(r.Epochs, audit.Epoch{Number: uint32(i + 1), Start: start, Cause: "group.rekeyed", By: "keyserver"})
	}
	at := func(e int) time.Time { return r.Epochs[e-1].Start }
	ptr := func(t time.Time) *time.Time { return &t }
	for i := range n - 1 {
		r.Epochs[i].End = ptr(at(i + 2))
	}
	for i := range r.Epochs {
		r.Epochs[i].Members = []string{"alice"}
		switch i + 1 {
		case 2:
			r.Epochs[i].Members = append(r.Epochs[i].Members, "bob")
		case 3, 4:
			r.Epochs[i].Members = append(r.Epochs[i].Members, "carol")
		}
	}
	r.Members = []audit.Member{
		{Client: "c1", Name: "alice", Spans: []audit.Span{{From: at(1), FromEpoch: 1}}},
		{Client: "c2", Name: "bob", Spans: []audit.Span{{From: at(2), To: ptr(at(3)), FromEpoch: 2, ToEpoch: 2}}},
		{Client: "c3", Name: "carol", Spans: []audit.Span{{From: at(3), To: ptr(at(5)), FromEpoch: 3, ToEpoch: 4}}},
	}
	return r
}

// element is an SVG element's position: a text's centre and estimated
// width, a rect's x and width.
type element struct {
	x, y, w float64
	text    string
}

// elements finds the SVG elements of a tag and class.
func elements(t *testing.T, svg, tag, class string) []element {
	t.Helper()
	re := regexp.MustCompile(`<` + tag + ` class="` + class + `[^"]*" x="([0-9.]+)"(?: y="([0-9.]+)")?(?: width="([0-9.]+)")?[^>]*>([^<]*)`)
	var out []element
	for _, m := range re.FindAllStringSubmatch(svg, -1) {
		var e element
		fmt.Sscan(m[1], &e.x)
		fmt.Sscan(m[2], &e.y)
		fmt.Sscan(m[3], &e.w)
		e.text = m[4]
		if tag == "text" {
			e.w = 7.5 * float64(len(e.text)) // bold 11px, as Chromium draws them (TestHTMLInBrowser)
		}
		out = append(out, e)
	}
	return out
}
