package main

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// goal is what a ratio (or, without a bound, the figure itself) must
// reach: at least or at most limit.
type goal struct {
	atLeast bool
	limit   float64
	unit    string // "×" for a ratio to the bound; otherwise the figure's own unit
}

func atLeast(x float64) goal { return goal{atLeast: true, limit: x, unit: "×"} }
func atMost(x float64) goal  { return goal{limit: x, unit: "×"} }

func (g goal) String() string {
	if g.unit == "" {
		return "—"
	}
	op := "≤"
	if g.atLeast {
		op = "≥"
	}
	sep := " "
	if g.unit == "×" {
		sep = ""
	}
	return fmt.Sprintf("%s %s%s%s", op, trimFloat(g.limit), sep, g.unit)
}

func (g goal) met(v float64) bool {
	if g.atLeast {
		return v >= g.limit
	}
	return v <= g.limit
}

// row is one line of the table. A row whose figure could not be measured
// has a verdict but no value.
type row struct {
	figure  string
	ours    string
	bound   string
	ratio   float64 // the figure over its bound (NaN: none)
	goal    goal
	checked float64 // what the goal is checked against: the ratio, or the figure itself
	verdict string  // set for rows not measured ("not run: ...", "error")
}

func (r row) verdictText() string {
	switch {
	case r.verdict != "":
		return r.verdict
	case r.goal.unit == "" || math.IsNaN(r.checked):
		return "—"
	case r.goal.met(r.checked):
		return "met"
	}
	return "**missed**"
}

// nanRatio marks a row without a ratio.
var nanRatio = math.NaN()

func (r row) ratioText() string {
	if math.IsNaN(r.ratio) || r.ours == "" {
		return "—"
	}
	return fmt.Sprintf("%.2f×", r.ratio)
}

// newRow makes a row whose goal is checked against the ratio ours/bound.
func newRow(figure, ours, bound string, ratio float64, g goal) row {
	return row{figure: figure, ours: ours, bound: bound, ratio: ratio, goal: g, checked: ratio}
}

// printTable prints the rows as a Markdown table, then the notes.
func printTable(w io.Writer, rows []row, notes []string) {
	cells := [][]string{{"figure", "ours", "bound, same run", "ratio", "goal", "verdict"}}
	for _, r := range rows {
		cells = append(cells, []string{r.figure, orDash(r.ours), orDash(r.bound), r.ratioText(), r.goal.String(), r.verdictText()})
	}
	widths := make([]int, len(cells[0]))
	for _, c := range cells {
		for i, s := range c {
			widths[i] = max(widths[i], len([]rune(s)))
		}
	}
	for i, c := range cells {
		printCells(w, c, widths)
		if i == 0 {
			rule := make([]string, len(widths))
			for j, n := range widths {
				rule[j] = strings.Repeat("-", n)
			}
			printCells(w, rule, widths)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "\nNotes:")
		for _, n := range notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
	}
}

func printCells(w io.Writer, cells []string, widths []int) {
	var b strings.Builder
	for i, s := range cells {
		b.WriteString("| ")
		b.WriteString(s)
		b.WriteString(strings.Repeat(" ", widths[i]-len([]rune(s))+1))
	}
	b.WriteString("|")
	fmt.Fprintln(w, b.String())
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// trimFloat prints x without trailing zeros.
func trimFloat(x float64) string {
	s := fmt.Sprintf("%.2f", x)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

// count prints n with thousands separators: 10,000.
func count(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// perSec prints a rate.
func perSec(x float64) string { return fmt.Sprintf("%.0f/s", x) }
