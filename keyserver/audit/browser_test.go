package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The browser renders the page at 1 CSS pixel per device pixel in a
// window of this size; the chart must fit in it.
const (
	windowW = 1100
	windowH = 800
)

// box is an element's rectangle in CSS pixels, as Chromium laid it out.
type box struct {
	X, Y, W, H float64
	Text       string
}

type boxes struct {
	SVG    box
	Labels []box
	Bars   []box
}

// measure is appended to a copy of the page (the page itself runs no
// script) to report where the browser drew the chart's parts.
const measure = `<script>
(function () {
  function b(e) { var r = e.getBoundingClientRect(); return {X: r.left, Y: r.top, W: r.width, H: r.height, Text: e.textContent}; }
  var out = {SVG: b(document.querySelector("svg")),
    Labels: Array.from(document.querySelectorAll("svg text.elabel")).map(b),
    Bars: Array.from(document.querySelectorAll("svg rect.bar")).map(b)};
  var pre = document.createElement("pre");
  pre.id = "boxes";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>`

// TestHTMLInBrowser renders the page of a group whose epochs open in the
// same second with headless Chromium, and checks the layout twice: the
// boxes Chromium gives the epoch labels do not overlap and each
// membership's bar is several pixels wide; and the screenshot agrees: every
// bar is painted in its colour across its whole box, every label's red
// lies inside its own box (so no two labels' ink meets) and every box holds
// some. The screenshot is kept in $TMPDIR; its path is logged.
func TestHTMLInBrowser(t *testing.T) {
	browser := findChromium()
	if browser == "" {
		t.Skip("no headless Chromium found (chromium, chromium-browser or google-chrome): apt-get install chromium; .ci/run installs it")
	}
	out, err := os.MkdirTemp("", "audit-browser-")
	if err != nil {
		t.Fatal(err)
	}
	var page bytes.Buffer
	if err := sameSecond(8).WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	pagePath, shot := filepath.Join(out, "page.html"), filepath.Join(out, "page.png")
	measured := filepath.Join(out, "measured.html")
	must(t, os.WriteFile(pagePath, page.Bytes(), 0o644))
	must(t, os.WriteFile(measured, bytes.Replace(page.Bytes(), []byte("</body>"), []byte(measure+"</body>"), 1), 0o644))

	chromium(t, browser, out, "--screenshot="+shot, "file://"+pagePath)
	t.Logf("screenshot: %s (page %s)", shot, pagePath)
	dom := chromium(t, browser, out, "--dump-dom", "file://"+measured)
	m := regexp.MustCompile(`<pre id="boxes">([^<]*)</pre>`).FindSubmatch(dom)
	if m == nil {
		t.Fatalf("no boxes in the DOM Chromium dumped:\n%.2000s", dom)
	}
	var bx boxes
	must(t, json.Unmarshal([]byte(html.UnescapeString(string(m[1]))), &bx))
	img := readPNG(t, shot)

	if len(bx.Labels) != 8 || len(bx.Bars) != 3 {
		t.Fatalf("%d labels and %d bars drawn, want 8 and 3", len(bx.Labels), len(bx.Bars))
	}
	if bx.SVG.Y+bx.SVG.H > windowH || bx.SVG.X+bx.SVG.W > windowW {
		t.Fatalf("the chart %+v does not fit the %dx%d window", bx.SVG, windowW, windowH)
	}
	checkLabels(t, bx, img)
	checkBars(t, bx, img)
}

func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// chromium runs the browser headless on one page and returns its stdout.
func chromium(t *testing.T, browser, dir string, args ...string) []byte {
	t.Helper()
	profile, err := os.MkdirTemp(dir, "profile-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(profile)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
		"--force-device-scale-factor=1", "--window-size=" + strconv.Itoa(windowW) + "," + strconv.Itoa(windowH), "--user-data-dir=" + profile}
	cmd := exec.CommandContext(ctx, browser, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", browser, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != windowW || b.Dy() != windowH {
		t.Fatalf("screenshot %v, want %dx%d", b, windowW, windowH)
	}
	return img
}

// labelInk is the labels' red (#cf222e) and its anti-aliased blends with
// the white page: red well above green and blue.
func labelInk(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return r>>8 > g>>8+60 && r>>8 > b>>8+60
}

// barPaint is a bar's fill: past (#0969da) or current (#1a7f37).
func barPaint(c color.Color) bool {
	near := func(c color.Color, r, g, b uint32) bool {
		cr, cg, cb, _ := c.RGBA()
		d := func(x, y uint32) bool { return x>>8+12 >= y && y+12 >= x>>8 }
		return d(cr, r) && d(cg, g) && d(cb, b)
	}
	return near(c, 0x09, 0x69, 0xda) || near(c, 0x1a, 0x7f, 0x37)
}

// checkLabels: no two label boxes overlap; in the labels' band above the
// plot, every pixel of label red lies inside a label's box (1 px of
// slack), and every label's box holds some of it.
func checkLabels(t *testing.T, bx boxes, img image.Image) {
	t.Helper()
	for i, a := range bx.Labels {
		for _, b := range bx.Labels[i+1:] {
			if a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H {
				t.Errorf("labels %s %+v and %s %+v overlap", a.Text, a, b.Text, b)
			}
		}
	}
	scale := bx.SVG.W / 1000 // the chart's viewBox is 1000 units wide
	top := int(bx.SVG.Y)
	bottom := top + int(44*scale) // the labels' rows, above the plot (its epoch lines start at 46)
	inks := make([]int, len(bx.Labels))
	stray := 0
	for y := top; y < bottom; y++ {
		for x := int(bx.SVG.X); x < int(bx.SVG.X+bx.SVG.W); x++ {
			if !labelInk(img.At(x, y)) {
				continue
			}
			owner := -1
			for i, l := range bx.Labels {
				if float64(x) >= l.X-1 && float64(x) <= l.X+l.W+1 && float64(y) >= l.Y-1 && float64(y) <= l.Y+l.H+1 {
					owner = i
				}
			}
			if owner < 0 {
				stray++
			} else {
				inks[owner]++
			}
		}
	}
	if stray > 0 {
		t.Errorf("%d pixels of label red outside every label's box", stray)
	}
	for i, n := range inks {
		if n < 10 {
			t.Errorf("label %s: %d pixels of ink in its box, want its glyphs", bx.Labels[i].Text, n)
		}
	}
}

// checkBars: every membership's box is at least 20 px wide (the two held
// for less than a second included), and along its middle row the
// screenshot holds its fill across the whole box but the rounded ends,
// except where an epoch's dashed line crosses it (a pixel or two each).
func checkBars(t *testing.T, bx boxes, img image.Image) {
	t.Helper()
	for i, b := range bx.Bars {
		if b.W < 20 {
			t.Errorf("bar %d is %.1f px wide, want at least 20", i, b.W)
		}
		crossings := 0
		for _, l := range bx.Labels { // a label is centred on its epoch's line
			if c := l.X + l.W/2; c > b.X+2 && c < b.X+b.W-2 {
				crossings++
			}
		}
		y := int(b.Y + b.H/2)
		fill, line := 0, 0
		for x := int(b.X) + 2; x < int(b.X+b.W)-2; x++ {
			switch c := img.At(x, y); {
			case barPaint(c):
				fill++
			case labelInk(c):
				line++
			}
		}
		if want := int(b.W) - 5; fill+line < want || line > 2*crossings {
			t.Errorf("bar %d %+v: %d px of its fill and %d of %d epoch lines along its middle, want %d in all", i, b, fill, line, crossings, want)
		}
	}
}
