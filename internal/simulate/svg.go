package simulate

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strings"
	"time"
)

type series struct {
	name  string
	color string
	dash  string
	y     func(Sample) float64
}

type panel struct {
	title  string
	unit   string
	series []series
}

// SVG draws samples as stacked charts sharing the time axis: jobs per
// second (arrivals, pace, done, ceiling; the jobs answered 429 when there
// are any; and, for a scenario with a downstream capacity, that capacity
// and the pacer's estimate of it), the factor, and the backlog; for a
// run with a learned concurrency limit or servers, also the concurrency
// (the limit, the jobs in flight, the servers) and the latency (the p90
// of the jobs done, and the pacer's p90, mean and no-load latency). Each
// mark is a labelled span across the charts, shaded (every other one, for
// marks side by side), and each pause (the pace 0) is shaded grey.
func SVG(title string, samples []Sample, marks ...Mark) string {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	panels := []panel{
		{"throughput", "jobs/s", []series{
			{"ceiling (rate)", "#d62728", "6,4", func(s Sample) float64 { return s.Ceiling }},
			{"arrivals", "#7f7f7f", "2,3", func(s Sample) float64 { return s.Arrival }},
			{"pace admitted", "#1f77b4", "", func(s Sample) float64 { return s.Pace }},
			{"done (1 s window)", "#2ca02c", "", func(s Sample) float64 { return s.DoneRate }},
		}},
		{"factor", "× base", []series{
			{"factor", "#9467bd", "", func(s Sample) float64 { return s.Factor }},
		}},
		{"backlog", "jobs", []series{
			{"backlog", "#ff7f0e", "", func(s Sample) float64 { return float64(s.Backlog) }},
		}},
	}
	if slices.ContainsFunc(samples, func(s Sample) bool { return s.ThrottledRate > 0 }) {
		panels[0].series = append(panels[0].series,
			series{"429s (1 s window)", "#8c564b", "", func(s Sample) float64 { return s.ThrottledRate }})
	}
	if slices.ContainsFunc(samples, func(s Sample) bool { return s.Capacity > 0 }) {
		panels[0].series = append(panels[0].series,
			series{"downstream capacity", "#17becf", "8,3", func(s Sample) float64 { return s.Capacity }})
	}
	if slices.ContainsFunc(samples, func(s Sample) bool { return s.Estimate > 0 }) {
		panels[0].series = append(panels[0].series,
			series{"estimated capacity", "#e377c2", "2,2", func(s Sample) float64 { return s.Estimate }})
	}
	if slices.ContainsFunc(samples, func(s Sample) bool { return s.ConcurrencyLimit > 0 || s.Servers > 0 }) {
		panels = append(panels,
			panel{"concurrency", "jobs", []series{
				{"servers", "#17becf", "8,3", func(s Sample) float64 { return float64(s.Servers) }},
				{"concurrency limit", "#d62728", "", func(s Sample) float64 { return float64(s.ConcurrencyLimit) }},
				{"in flight", "#1f77b4", "2,2", func(s Sample) float64 { return float64(s.InFlight) }},
			}},
			panel{"latency", "ms", []series{
				{"p90 latency (done, 1 s)", "#2ca02c", "", func(s Sample) float64 { return ms(s.DoneP90) }},
				{"pacer's p90", "#1f77b4", "2,2", func(s Sample) float64 { return ms(s.LatencyP90) }},
				{"pacer's mean", "#9467bd", "2,3", func(s Sample) float64 { return ms(s.LatencyMean) }},
				{"no-load latency", "#7f7f7f", "6,4", func(s Sample) float64 { return ms(s.LatencyNoLoad) }},
			}})
	}
	// The pauses: each run of samples with the pace 0 is a mark.
	var spans []Mark
	for i := 0; i < len(samples); i++ {
		if samples[i].Pace != 0 {
			continue
		}
		j := i
		for j+1 < len(samples) && samples[j+1].Pace == 0 {
			j++
		}
		spans = append(spans, Mark{samples[i].T, samples[min(j+1, len(samples)-1)].T, "paused"})
		i = j
	}
	const (
		W, left, right, top = 960, 80, 190, 50
		ph, gap             = 190, 50
	)
	H := top + len(panels)*(ph+gap) + 20
	pw := W - left - right
	tmax := samples[len(samples)-1].T.Seconds()
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	xs := func(t float64) float64 { return left + t/tmax*float64(pw) }
	// The marks and the pauses, under everything else, across every chart.
	bottom := top + (len(panels)-1)*(ph+gap) + ph
	band := func(m Mark, fill string) (x0 float64) {
		x0, x1 := xs(max(m.From.Seconds(), 0)), xs(min(m.To.Seconds(), tmax))
		for i := range panels {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x0, top+i*(ph+gap), max(x1-x0, 1), ph, fill)
		}
		return x0
	}
	for i, m := range marks {
		fill := "#fdf3d8"
		if i%2 == 1 {
			fill = "none" // marks side by side (phases): every other one shaded
		}
		x0 := band(m, fill)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#c9a227" stroke-dasharray="3,3"/>`, x0, top-8, x0, bottom)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#7a5d00" font-size="11">%s</text>`+"\n", x0+3, top-2, html.EscapeString(m.Label))
	}
	for _, m := range spans {
		band(m, "#e8e8e8")
	}
	if len(spans) > 0 {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="24" height="10" fill="#e8e8e8"/><text x="%d" y="%d">paused (pace 0)</text>`+"\n",
			left+pw+14, bottom-10, left+pw+44, bottom-1)
	}
	for i, p := range panels {
		y0 := top + i*(ph+gap)
		ymax := 0.0
		for _, s := range p.series {
			for _, sm := range samples {
				ymax = math.Max(ymax, s.y(sm))
			}
		}
		step := niceStep(ymax / 4)
		ymax = math.Max(step*math.Ceil(ymax/step*1.05), step)
		ys := func(v float64) float64 { return float64(y0+ph) - v/ymax*float64(ph) }
		// Frame, grid and y ticks.
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", left, y0, pw, ph)
		for v := 0.0; v <= ymax+step/2; v += step {
			y := ys(v)
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e5e5e5"/>`, left+1, y, left+pw-1, y)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+4, fmtTick(v))
		}
		fmt.Fprintf(&b, `<text transform="translate(%d,%d) rotate(-90)" text-anchor="middle">%s (%s)</text>`+"\n",
			left-52, y0+ph/2, p.title, html.EscapeString(p.unit))
		// x ticks.
		xstep := niceStep(tmax / 8)
		for t := 0.0; t <= tmax+xstep/100; t += xstep {
			x := xs(t)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>`, x, y0+ph, x, y0+ph+4)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, y0+ph+16, fmtTick(t))
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="#555">time (s)</text>`+"\n", left+pw, y0+ph+32)
		// Lines.
		for _, s := range p.series {
			var pts strings.Builder
			for _, sm := range samples {
				fmt.Fprintf(&pts, "%.1f,%.1f ", xs(sm.T.Seconds()), ys(s.y(sm)))
			}
			dash := ""
			if s.dash != "" {
				dash = fmt.Sprintf(` stroke-dasharray="%s"`, s.dash)
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.6"%s points="%s"/>`+"\n", s.color, dash, strings.TrimSpace(pts.String()))
		}
		// Legend.
		for j, s := range p.series {
			ly := y0 + 14 + j*18
			lx := left + pw + 14
			dash := ""
			if s.dash != "" {
				dash = fmt.Sprintf(` stroke-dasharray="%s"`, s.dash)
			}
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`, lx, ly, lx+24, ly, s.color, dash)
			fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", lx+30, ly+4, html.EscapeString(s.name))
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceStep returns 1, 2 or 5 × a power of ten, at least x.
func niceStep(x float64) float64 {
	if x <= 0 || math.IsNaN(x) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

func fmtTick(v float64) string {
	if math.Abs(v-math.Round(v)) < 1e-9 {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}
