package audit

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// WriteHTML writes the report as one self-contained page (inline CSS and
// SVG, no scripts, nothing fetched): the group's header, a timeline with
// one row per member and the epoch boundaries, the epoch and change
// tables, and what was verified. Every string from the log is escaped by
// html/template.
func (r *Report) WriteHTML(w io.Writer) error {
	if err := pageTemplate.Execute(w, newPage(r)); err != nil {
		return fmt.Errorf("audit: html: %w", err)
	}
	return nil
}

// Chart geometry, in SVG user units.
const (
	chartWidth    = 1000
	labelWidth    = 170
	plotRight     = chartWidth - 20
	axisTop       = 46 // room for three rows of epoch labels
	rowHeight     = 22
	barHeight     = 14
	labelRows     = 3
	labelCharW    = 8  // an epoch label's width per character (11px, bold; Chromium draws 7.5)
	labelPad      = 6  // space between two labels on a row
	minEpochWidth = 30 // an epoch's share of the plot, at least, while they fit
	minBarWidth   = 4  // a membership that held no key is still visible
	maxChartRow   = 500
)

type page struct {
	R       *Report
	Chart   chart
	Epochs  []epochRow
	Changes []changeRow
}

type changeRow struct {
	Change
	AfterBreak bool // at or after the first broken event of the log
}

type chart struct {
	Width, Height, PlotLeft, PlotRight, AxisY, Bottom int
	Broken                                            bool // drawn crossed out: not verified
	Rows                                              []chartRow
	Lines                                             []epochLine
	From, To                                          string
	Hidden                                            int // members not drawn
}

type chartRow struct {
	Y, TextY int
	Name     string
	Bars     []chartBar
}

type chartBar struct {
	X, W  int
	Open  bool
	Title string
}

type epochLine struct {
	X, LabelY int
	Label     string
	ShowLabel bool
	Title     string
}

type epochRow struct {
	Epoch
	To, Cause string
}

func newPage(r *Report) page {
	p := page{R: r, Chart: newChart(r)}
	for _, c := range r.Changes {
		p.Changes = append(p.Changes, changeRow{Change: c, AfterBreak: r.Broken != nil && c.StreamSeq >= r.Broken.StreamSeq})
	}
	for _, e := range r.Epochs {
		p.Epochs = append(p.Epochs, epochRow{Epoch: e, To: until(e.End), Cause: r.cause(e)})
	}
	return p
}

// epochScale lays the plot out by epoch order, not by time alone: each
// epoch gets at least minEpochWidth units (less when there are too many
// to fit: then half the plot is shared equally) and the rest of the width
// is shared by duration. Epochs opened in the same second stay apart, and
// every membership spans at least the epochs it held. The time before the
// first epoch gets its share of time only.
type epochScale struct {
	left, right float64
	slots       []slot
	index       map[uint32]int // epoch number → slot
}

// slot is one epoch's stretch of the plot.
type slot struct {
	from, to time.Time
	x0, x1   float64
}

func newEpochScale(r *Report, end time.Time, left, right int) epochScale {
	sc := epochScale{left: float64(left), right: float64(right), index: map[uint32]int{}}
	n := len(r.Epochs)
	if n == 0 {
		return sc
	}
	width := sc.right - sc.left
	minW := min(minEpochWidth, width/float64(2*n))
	free := width - minW*float64(n)
	total := end.Sub(r.Created)
	share := func(d time.Duration) float64 { // of the free width
		if total <= 0 {
			return 0
		}
		return free * float64(max(d, 0)) / float64(total)
	}
	if total <= 0 {
		minW = width / float64(n) // all in one instant: equal shares
	}
	x := sc.left + share(r.Epochs[0].Start.Sub(r.Created))
	for i, e := range r.Epochs {
		to := end
		if i+1 < n {
			to = r.Epochs[i+1].Start
		}
		w := minW + share(to.Sub(e.Start))
		sc.index[e.Number] = len(sc.slots)
		sc.slots = append(sc.slots, slot{from: e.Start, to: to, x0: x, x1: x + w})
		x += w
	}
	sc.slots[n-1].x1 = sc.right // rounding
	return sc
}

// epoch is the stretch of the plot of epoch number.
func (sc epochScale) epoch(number uint32) (slot, bool) {
	i, ok := sc.index[number]
	if !ok {
		return slot{}, false
	}
	return sc.slots[i], true
}

// x places a time: inside the epoch it falls in, by its share of the
// epoch's duration.
func (sc epochScale) x(t time.Time) float64 {
	if len(sc.slots) == 0 || !t.After(sc.slots[0].from) {
		if len(sc.slots) == 0 {
			return sc.left
		}
		return sc.slots[0].x0
	}
	for _, s := range sc.slots {
		if t.Before(s.to) {
			f := 0.0
			if d := s.to.Sub(s.from); d > 0 {
				f = float64(t.Sub(s.from)) / float64(d)
			}
			return s.x0 + f*(s.x1-s.x0)
		}
	}
	return sc.right
}

// span places a membership by its epochs: from the start of the first it
// held to the end of the last (the plot's end while it lasts).
func (sc epochScale) span(s Span) (x0, x1 float64) {
	first, ok := sc.epoch(s.FromEpoch)
	if !ok {
		x0 = sc.x(s.From)
	} else {
		x0 = first.x0
	}
	switch last, ok := sc.epoch(s.ToEpoch); {
	case s.To == nil:
		x1 = sc.right
	case s.ToEpoch < s.FromEpoch:
		x1 = x0 // held no key
	case ok:
		x1 = last.x1
	default:
		x1 = sc.x(*s.To)
	}
	return x0, x1
}

func newChart(r *Report) chart {
	end := r.Until
	if r.Deleted != nil {
		end = *r.Deleted
	}
	sc := newEpochScale(r, end, labelWidth, plotRight)
	drawn := r.Members[:min(len(r.Members), maxChartRow)]
	c := chart{Width: chartWidth, PlotLeft: labelWidth, PlotRight: plotRight, AxisY: axisTop,
		Height: axisTop + rowHeight*len(drawn) + 28, Hidden: len(r.Members) - len(drawn),
		From: r.Created.Format(timeFormat) + " UTC", To: end.Format(timeFormat) + " UTC"}
	c.Bottom, c.Broken = c.Height-24, r.Broken != nil
	for i, m := range drawn {
		c.Rows = append(c.Rows, r.chartRow(m, axisTop+4+i*rowHeight, sc))
	}
	c.Lines = r.epochLines(sc)
	return c
}

func (r *Report) chartRow(m Member, y int, sc epochScale) chartRow {
	row := chartRow{Y: y, TextY: y + barHeight - 3, Name: m.Name}
	for _, s := range m.Spans {
		x0, x1 := sc.span(s)
		row.Bars = append(row.Bars, chartBar{X: round(x0), W: max(round(x1)-round(x0), minBarWidth), Open: s.To == nil, Title: r.spanTitle(m, s)})
	}
	return row
}

func round(x float64) int { return int(math.Round(x)) }

// spanTitle tells who added the member, when, and who removed it and why.
func (r *Report) spanTitle(m Member, s Span) string {
	t := fmt.Sprintf("%s (%s): member from %s UTC, epoch %d", m.Name, m.Client, s.From.Format(timeFormat), s.FromEpoch)
	if c, ok := r.changeAt(s.From, m.Name); ok {
		t += ", added by " + short(c.By)
	}
	if s.To == nil {
		return t + "; still a member"
	}
	t += fmt.Sprintf("; until %s UTC (%s)", s.To.Format(timeFormat), epochs(s))
	if c, ok := r.changeAt(*s.To, m.Name); ok {
		t += ", " + strings.TrimPrefix(c.Type, "group.") + " by " + short(c.By)
		if c.Reason != "" {
			t += fmt.Sprintf(": %q", c.Reason)
		}
	}
	return t
}

// changeAt finds the change at t that names client (or names nobody, as a
// deletion does).
func (r *Report) changeAt(t time.Time, client string) (Change, bool) {
	for _, c := range r.Changes {
		if c.Time.Equal(t) && (len(c.Clients) == 0 || slices.Contains(c.Clients, client)) {
			return c, true
		}
	}
	return Change{}, false
}

// epochLines places a line at each epoch's start, its label centred on
// it on the first of three rows where it clears the previous label of
// that row (or nowhere: the line's title still names it).
func (r *Report) epochLines(sc epochScale) []epochLine {
	var right [labelRows]int // where each row's last label ends
	for i := range right {
		right[i] = math.MinInt / 2
	}
	var out []epochLine
	for _, e := range r.Epochs {
		s, _ := sc.epoch(e.Number)
		l := epochLine{X: round(s.x0), Label: fmt.Sprintf("e%d", e.Number), Title: r.epochTitle(e)}
		half := labelCharW * len(l.Label) / 2
		for row := range labelRows {
			if l.X-half >= right[row]+labelPad {
				l.ShowLabel, l.LabelY, right[row] = true, 12+row*12, l.X+half
				break
			}
		}
		out = append(out, l)
	}
	return out
}

func (r *Report) epochTitle(e Epoch) string {
	return fmt.Sprintf("epoch %d from %s UTC: %s; members: %s", e.Number, e.Start.Format(timeFormat), r.cause(e), list(e.Members))
}

var pageTemplate = template.Must(template.New("audit").Funcs(template.FuncMap{
	"time":  func(t time.Time) string { return t.Format(timeFormat) + " UTC" },
	"utc":   func(t time.Time) string { return t.Format(timeFormat) },
	"short": short,
	"join":  func(s []string) string { return strings.Join(s, ", ") },
	"type":  func(s string) string { return strings.TrimPrefix(s, "group.") },
	"sub":   func(a, b int) int { return a - b },
	"half":  func(a, b int) int { return (a + b) / 2 },
}).Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Audit of group {{.R.Name}}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; color: #1b1f24; margin: 2em auto; max-width: 1040px; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; }
h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #d0d7de; padding-bottom: .2em; }
.meta, footer { color: #57606a; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .92em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .3em .6em; border-bottom: 1px solid #eaeef2; }
th { background: #f6f8fa; }
td.num { text-align: right; }
td.t { white-space: nowrap; }
svg { width: 100%; height: auto; background: #fff; }
svg text { font: 11px system-ui, sans-serif; fill: #1b1f24; }
svg .bar { fill: #0969da; }
svg .bar.open { fill: #1a7f37; }
svg .epoch { stroke: #cf222e; stroke-width: 1; stroke-dasharray: 3 3; }
svg .elabel { fill: #cf222e; font-weight: 600; }
svg .axis { stroke: #8c959f; }
svg .grid { stroke: #eaeef2; }
.legend span { display: inline-block; width: 1em; height: .7em; margin: 0 .3em 0 1em; }
footer { margin-top: 2em; border-top: 1px solid #d0d7de; padding-top: .8em; }
.deleted { color: #cf222e; font-weight: 600; }
.broken { border: 2px solid #cf222e; background: #ffebe9; color: #82071e; padding: .6em .9em; margin: 1em 0; }
tr.after td { color: #82071e; background: #fff5f4; }
svg .unverified { fill: #cf222e; fill-opacity: .08; stroke: #cf222e; stroke-width: 2; stroke-dasharray: 8 4; }
svg .unverified-label { fill: #cf222e; font-size: 28px; font-weight: 700; opacity: .55; }
</style>
</head>
<body>
<header>
<h1>Group {{.R.Name}}</h1>
<div class="meta">id <code>{{.R.Group}}</code> &middot; created {{time .R.Created}} by {{short .R.CreatedBy}}
{{- with .R.Deleted}} &middot; <span class="deleted">deleted {{time .}}</span>{{end}}
&middot; audited {{time .R.Until}}</div>
{{- with .R.Broken}}
<div class="broken" role="alert"><strong>VERIFICATION FAILED</strong>: the log is broken at event {{.StreamSeq}} on <code>{{.Subject}}</code>: {{.Reason}}.
What this page shows is what the log says, events that failed left out: it is <strong>not verified</strong>. Compare with a copy of the log you trust.</div>
{{- end}}
</header>

<h2>Timeline{{if .R.Broken}} (NOT VERIFIED){{end}}</h2>
<p class="legend">Who held the group key, epoch by epoch.<span style="background:#0969da"></span>past membership<span style="background:#1a7f37"></span>current membership<span style="background:#cf222e;height:2px"></span>new epoch (fresh key). Epochs are drawn in order, each at least a few units wide, the rest of the width by how long they lasted: the axis is not linear in time. Hover for details.</p>
{{with .Chart}}
<svg viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="membership timeline">
{{- range $row := .Rows}}
<line class="grid" x1="{{$.Chart.PlotLeft}}" x2="{{$.Chart.PlotRight}}" y1="{{$row.Y}}" y2="{{$row.Y}}"></line>
<text x="8" y="{{$row.TextY}}">{{$row.Name}}</text>
{{- range $row.Bars}}
<rect class="bar{{if .Open}} open{{end}}" x="{{.X}}" y="{{$row.Y}}" width="{{.W}}" height="14" rx="2"><title>{{.Title}}</title></rect>
{{- end}}
{{- end}}
{{- range .Lines}}
<g><title>{{.Title}}</title>
<line class="epoch" x1="{{.X}}" x2="{{.X}}" y1="{{$.Chart.AxisY}}" y2="{{$.Chart.Bottom}}"></line>
{{- if .ShowLabel}}<text class="elabel" x="{{.X}}" y="{{.LabelY}}" text-anchor="middle">{{.Label}}</text>{{end}}</g>
{{- end}}
{{- if .Broken}}
<rect class="unverified" x="{{.PlotLeft}}" y="{{.AxisY}}" width="{{sub .PlotRight .PlotLeft}}" height="{{sub .Bottom .AxisY}}"></rect>
<text class="unverified-label" x="{{half .PlotLeft .PlotRight}}" y="{{half .AxisY .Bottom}}" dy="10" text-anchor="middle">NOT VERIFIED</text>
{{- end}}
<line class="axis" x1="{{.PlotLeft}}" x2="{{.PlotRight}}" y1="{{.Bottom}}" y2="{{.Bottom}}"></line>
<text x="{{.PlotLeft}}" y="{{.Height}}" dy="-6">{{.From}}</text>
<text x="{{.PlotRight}}" y="{{.Height}}" dy="-6" text-anchor="end">{{.To}}</text>
</svg>
{{- if .Hidden}}<p class="meta">{{.Hidden}} more members are not drawn; the tables list them.</p>{{end}}
{{end}}

<h2>Epochs: who held each key</h2>
<table>
<tr><th>epoch</th><th>from (UTC)</th><th>to (UTC)</th><th>members</th><th>opened by</th></tr>
{{- range .Epochs}}
<tr><td class="num">{{.Number}}</td><td class="t">{{utc .Start}}</td><td class="t">{{.To}}</td><td>{{join .Members}}</td><td>{{.Cause}}</td></tr>
{{- end}}
</table>

<h2>Changes</h2>
<table>
<tr><th>#</th><th>log seq</th><th>time (UTC)</th><th>change</th><th>clients</th><th>epoch</th><th>by</th><th>reason</th></tr>
{{- range .Changes}}
<tr{{if .AfterBreak}} class="after" title="at or after the first broken event of the log"{{end}}><td class="num">{{.Seq}}</td><td class="num">{{.StreamSeq}}</td><td class="t">{{utc .Time}}</td><td>{{type .Type}}</td><td>{{join .Clients}}</td><td class="num">{{if .Epoch}}{{.Epoch}}{{end}}</td><td>{{short .By}}</td><td>{{.Reason}}</td></tr>
{{- end}}
</table>

{{if .R.Broken}}{{with .R.Broken}}
<footer class="broken">
<p><strong>NOT VERIFIED</strong>: the log is broken at event {{.StreamSeq}} on <code>{{.Subject}}</code>: {{.Reason}}.</p>
</footer>
{{end}}{{else}}{{with .R.Verified}}
<footer>
<p>Verified: {{.GroupEvents}} group events (each signature and the hash chain) and {{.LogEvents}} log events (hash chains and head signatures).</p>
<p>Keyserver key <code>{{.KeyserverKey}}</code><br>
Head: group event {{.HeadSeq}}, hash <code>{{.HeadHash}}</code> (compare with a later audit)</p>
</footer>
{{end}}{{end}}
</body>
</html>
`
