package main

import (
	"bytes"
	"fmt"
	"os"
	"time"
)

// writeCSV writes the moving scenario's series: per bin, the capacity and
// each contender's goodput and throttled per second (and pacer's pace).
func writeCSV(path string, ls []limiter, ss []*series, level func(time.Duration) float64, total time.Duration) error {
	var b bytes.Buffer
	b.WriteString("t_s,capacity")
	for _, l := range ls {
		fmt.Fprintf(&b, ",%s_good,%s_throttled", l.name, l.name)
		if l.stats != nil {
			fmt.Fprintf(&b, ",%s_pace", l.name)
		}
	}
	b.WriteString("\n")
	for i := 0; i < int(total/bin); i++ {
		t := time.Duration(i) * bin
		fmt.Fprintf(&b, "%g,%g", t.Seconds(), level(t))
		for k, s := range ss {
			fmt.Fprintf(&b, ",%g,%g", float64(s.ok[i].Load())/bin.Seconds(), float64(s.thr[i].Load())/bin.Seconds())
			if ls[k].stats != nil {
				fmt.Fprintf(&b, ",%g", float64(s.pace[i].Load())/1000)
			}
		}
		b.WriteString("\n")
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// writeSVG draws the moving scenario: goodput of each contender per bin
// over the downstream's capacity (top), and the share of attempts
// throttled (bottom).
func writeSVG(path string, ls []limiter, ss []*series, level func(time.Duration) float64, total time.Duration) error {
	const (
		w, h1, h2, left, top, gap = 900.0, 300.0, 140.0, 60.0, 30.0, 50.0
		pw                        = w - left - 20
	)
	colors := []string{"#d62728", "#1f77b4", "#2ca02c"}
	n := int(total / bin)
	ymax := 0.0
	for i := 0; i < n; i++ {
		ymax = max(ymax, level(time.Duration(i)*bin)*1.6)
	}
	x := func(i int) float64 { return left + pw*float64(i)/float64(n) }
	y1 := func(v float64) float64 { return top + h1 - h1*min(v, ymax)/ymax }
	y2 := func(v float64) float64 { return top + h1 + gap + h2 - h2*v }
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" font-family="sans-serif" font-size="12">`+"\n", w, top+h1+gap+h2+40)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%g" y="18">goodput, jobs/s (per %v), against the downstream's capacity (grey); dashed: pacer's pace</text>`+"\n", left, bin)
	// axes and grid
	for v := 0.0; v <= ymax; v += 100 {
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%g" y="%.1f" text-anchor="end">%g</text>`+"\n", left, left+pw, y1(v), y1(v), left-4, y1(v)+4, v)
	}
	for s := 0; s <= int(total.Seconds()); s += 10 {
		xs := left + pw*float64(s)/total.Seconds()
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle">%ds</text>`+"\n", xs, top+h1+gap+h2+16, s)
	}
	poly := func(pts func(i int) (float64, float64), style string) {
		fmt.Fprintf(&b, `<polyline fill="none" %s points="`, style)
		for i := 0; i < n; i++ {
			px, py := pts(i)
			fmt.Fprintf(&b, "%.1f,%.1f ", px, py)
		}
		b.WriteString("\"/>\n")
	}
	poly(func(i int) (float64, float64) { return x(i), y1(level(time.Duration(i) * bin)) }, `stroke="#999" stroke-width="6" opacity="0.5"`)
	for k, s := range ss {
		poly(func(i int) (float64, float64) {
			return x(i), y1(float64(s.ok[i].Load()) / bin.Seconds())
		}, fmt.Sprintf(`stroke="%s" stroke-width="1.5"`, colors[k]))
		if ls[k].stats != nil {
			poly(func(i int) (float64, float64) {
				return x(i), y1(float64(s.pace[i].Load()) / 1000)
			}, fmt.Sprintf(`stroke="%s" stroke-width="1" stroke-dasharray="4,3"`, colors[k]))
		}
	}
	// bottom panel: throttled share
	fmt.Fprintf(&b, `<text x="%g" y="%g">throttled ÷ attempts</text>`+"\n", left, top+h1+gap-8)
	for _, v := range []float64{0, 0.5, 1} {
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%g" y="%.1f" text-anchor="end">%g</text>`+"\n", left, left+pw, y2(v), y2(v), left-4, y2(v)+4, v)
	}
	for k, s := range ss {
		poly(func(i int) (float64, float64) {
			ok, thr := s.ok[i].Load(), s.thr[i].Load()
			share := 0.0
			if ok+thr > 0 {
				share = float64(thr) / float64(ok+thr)
			}
			return x(i), y2(share)
		}, fmt.Sprintf(`stroke="%s" stroke-width="1.5"`, colors[k]))
	}
	for k, l := range ls {
		fmt.Fprintf(&b, `<rect x="%g" y="%g" width="14" height="4" fill="%s"/><text x="%g" y="%g">%s</text>`+"\n", left+pw-330+float64(k)*110, top+4, colors[k], left+pw-312+float64(k)*110, top+9, l.name)
	}
	b.WriteString("</svg>\n")
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// p90Per returns the 90th percentile latency of s per bin of width w.
func p90Per(s *series, total, w time.Duration) []time.Duration {
	n := int(total / w)
	per := make([][]time.Duration, n+1)
	s.mu.Lock()
	for _, x := range s.latencies {
		if i := int(x.at / w); i <= n {
			per[i] = append(per[i], x.d)
		}
	}
	s.mu.Unlock()
	out := make([]time.Duration, n+1)
	for i, l := range per {
		if len(l) > 0 {
			sortDur(l)
			out[i] = l[len(l)*9/10]
		}
	}
	return out
}

// writeServersSVG draws the servers scenario: each contender's goodput
// per bin over what the saturated downstream served (grey: the static
// limit), and below its 90th percentile latency per second.
func writeServersSVG(path string, ls []limiter, ss []*series, total, noLoad time.Duration) error {
	const (
		w, h1, h2, left, top, gap = 900.0, 260.0, 200.0, 60.0, 30.0, 50.0
		pw                        = w - left - 20
		lw                        = time.Second // the latency panel's bin
		lmax                      = 60.0        // ms, top of the latency panel
	)
	colors := []string{"#999", "#ff7f0e", "#1f77b4", "#2ca02c"}
	n := int(total / bin)
	ymax := 0.0
	for i := 0; i < n; i++ {
		ymax = max(ymax, float64(ss[0].ok[i].Load())/bin.Seconds()*1.3)
	}
	x := func(t float64) float64 { return left + pw*t/total.Seconds() }
	y1 := func(v float64) float64 { return top + h1 - h1*min(v, ymax)/ymax }
	y2 := func(ms float64) float64 { return top + h1 + gap + h2 - h2*min(ms, lmax)/lmax }
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" font-family="sans-serif" font-size="12">`+"\n", w, top+h1+gap+h2+40)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%g" y="18">goodput, jobs/s (per %v); grey: the static limit at the ceiling, what the saturated servers serve</text>`+"\n", left, bin)
	step := 500.0
	for v := 0.0; v <= ymax; v += step {
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%g" y="%.1f" text-anchor="end">%g</text>`+"\n", left, left+pw, y1(v), y1(v), left-4, y1(v)+4, v)
	}
	for s := 0; s <= int(total.Seconds()); s += 10 {
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle">%ds</text>`+"\n", x(float64(s)), top+h1+gap+h2+16, s)
	}
	for k, s := range ss {
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="%g" points="`, colors[k], map[bool]float64{true: 5, false: 1.5}[k == 0])
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "%.1f,%.1f ", x((time.Duration(i)*bin + bin/2).Seconds()), y1(float64(s.ok[i].Load())/bin.Seconds()))
		}
		b.WriteString("\"/>\n")
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g">p90 latency per second, ms (no-load %v, dashed at 2×; the static limit is off the top: 100–500 ms)</text>`+"\n", left, top+h1+gap-8, noLoad.Round(100*time.Microsecond))
	for v := 0.0; v <= lmax; v += 10 {
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%g" y="%.1f" text-anchor="end">%g</text>`+"\n", left, left+pw, y2(v), y2(v), left-4, y2(v)+4, v)
	}
	two := 2 * float64(noLoad) / 1e6
	fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="#000" stroke-dasharray="4,3"/>`+"\n", left, left+pw, y2(two), y2(two))
	for k, s := range ss[1:] {
		p := p90Per(s, total, lw)
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="`, colors[k+1])
		for i, d := range p[:len(p)-1] {
			fmt.Fprintf(&b, "%.1f,%.1f ", x((time.Duration(i)*lw + lw/2).Seconds()), y2(float64(d)/1e6))
		}
		b.WriteString("\"/>\n")
	}
	for k, l := range ls {
		fmt.Fprintf(&b, `<rect x="%g" y="%g" width="14" height="4" fill="%s"/><text x="%g" y="%g">%s</text>`+"\n", left+pw-440+float64(k)*110, top+4, colors[k], left+pw-422+float64(k)*110, top+9, l.name)
	}
	b.WriteString("</svg>\n")
	return os.WriteFile(path, b.Bytes(), 0o644)
}
