package loadgen

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"slices"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// palette colours the series of a plot, in order.
var palette = []color.RGBA{
	{31, 119, 180, 255}, {214, 39, 40, 255}, {44, 160, 44, 255}, {255, 127, 14, 255},
	{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {23, 190, 207, 255},
}

// PlotLatency draws latency against throughput as a PNG: one series per
// label and mix, one point per run (usually per concurrency level), p50 as a
// solid line with dots and p99 as a thin line, x in successful requests/s
// and y in milliseconds.
func PlotLatency(w io.Writer, title string, results []*Result) error {
	type series struct {
		name string
		pts  []*Result
	}
	var ss []*series
	for _, r := range results {
		name := r.Label + " / " + r.Mix
		i := slices.IndexFunc(ss, func(s *series) bool { return s.name == name })
		if i < 0 {
			ss = append(ss, &series{name: name})
			i = len(ss) - 1
		}
		ss[i].pts = append(ss[i].pts, r)
	}
	if len(ss) == 0 {
		return fmt.Errorf("loadgen: nothing to plot")
	}
	var maxX, maxY float64
	for _, s := range ss {
		slices.SortFunc(s.pts, func(a, b *Result) int { return a.Concurrency - b.Concurrency })
		for _, p := range s.pts {
			maxX, maxY = math.Max(maxX, p.RequestsPerSecond), math.Max(maxY, p.Latency.P99)
		}
	}
	maxX, maxY = niceCeil(maxX), niceCeil(maxY)

	const W, H, left, right, top, bottom = 960, 600, 70, 20, 50, 60
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	grey, black := color.RGBA{220, 220, 220, 255}, color.RGBA{0, 0, 0, 255}
	px := func(x float64) int { return left + int(x/maxX*float64(W-left-right)) }
	py := func(y float64) int { return H - bottom - int(y/maxY*float64(H-top-bottom)) }
	for k := 0; k <= 5; k++ {
		x, y := maxX*float64(k)/5, maxY*float64(k)/5
		line(img, px(x), top, px(x), H-bottom, grey, 1)
		line(img, left, py(y), W-right, py(y), grey, 1)
		text(img, px(x)-10, H-bottom+16, fmt.Sprintf("%.4g", x), black)
		text(img, 8, py(y)+4, fmt.Sprintf("%.4g", y), black)
	}
	line(img, left, H-bottom, W-right, H-bottom, black, 1)
	line(img, left, top, left, H-bottom, black, 1)
	text(img, left, 16, title, black)
	text(img, W/2-120, H-20, "throughput (successful requests/s)", black)
	text(img, 8, top-14, "latency ms (p50 thick, p99 thin)", black)

	for i, s := range ss {
		c := palette[i%len(palette)]
		for j, p := range s.pts {
			x, y50, y99 := px(p.RequestsPerSecond), py(p.Latency.P50), py(p.Latency.P99)
			dot(img, x, y50, 4, c)
			dot(img, x, y99, 2, c)
			text(img, x+6, y50-4, fmt.Sprintf("c=%d", p.Concurrency), c)
			if j > 0 {
				q := s.pts[j-1]
				line(img, px(q.RequestsPerSecond), py(q.Latency.P50), x, y50, c, 3)
				line(img, px(q.RequestsPerSecond), py(q.Latency.P99), x, y99, c, 1)
			}
		}
		text(img, W-right-300, top+16*(i+1), "-- "+s.name, c)
	}
	return png.Encode(w, img)
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func text(img *image.RGBA, x, y int, s string, c color.Color) {
	d := &font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func dot(img *image.RGBA, x, y, r int, c color.Color) {
	for dx := -r; dx <= r; dx++ {
		for dy := -r; dy <= r; dy++ {
			if dx*dx+dy*dy <= r*r {
				img.Set(x+dx, y+dy, c)
			}
		}
	}
}

// line draws a segment of the given width (Bresenham, thickened).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color, width int) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		for o := -(width / 2); o <= width/2; o++ {
			img.Set(x0+o, y0, c)
			img.Set(x0, y0+o, c)
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func sign(x int) int {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}
