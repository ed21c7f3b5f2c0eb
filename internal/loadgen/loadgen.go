package loadgen

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// Send puts one job with payload into the queue.
type Send func(ctx context.Context, payload []byte) error

// Config says what a Generator sends.
type Config struct {
	// Count is how many jobs to send, ≥ 1.
	Count int
	// Rate is jobs per second; 0 sends as fast as Send returns.
	Rate float64
	// Payload is each job's payload; {n} becomes the job's number, from 1.
	Payload string
	// Progress is where the progress bar is drawn, if it is a terminal
	// and Quiet is false.
	Progress io.Writer
	Quiet    bool
}

// Generator sends the jobs of a Config. It is for one goroutine.
type Generator struct {
	c  Config
	tb *pacer.TokenBucket // nil: no rate
}

// New returns a Generator for c; the error is about c.Rate or c.Count.
func New(c Config) (*Generator, error) {
	if c.Count < 1 {
		return nil, fmt.Errorf("loadgen: count %d: want ≥ 1", c.Count)
	}
	if c.Rate < 0 || c.Rate != c.Rate {
		return nil, &pacer.FieldError{Pkg: "loadgen", Field: "rate", Value: c.Rate, Want: "jobs per second ≥ 0 (0: as fast as the broker takes them)"}
	}
	g := &Generator{c: c}
	if c.Rate > 0 {
		var err error
		if g.tb, err = pacer.NewTokenBucket(c.Rate, 1, nil); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// Run sends the jobs, each once the rate allows, until all are sent, ctx
// ends or send fails. It returns how many were sent, how long it took,
// and send's error, which is about job sent+1.
func (g *Generator) Run(ctx context.Context, send Send) (sent int, took time.Duration, err error) {
	bar := newProgress(g.c.Progress, g.c.Count, g.c.Quiet)
	start := time.Now()
	defer func() { took = time.Since(start); bar.done(sent, took) }()
	for i := 1; i <= g.c.Count; i++ {
		if g.tb != nil {
			if err := g.tb.Acquire(ctx, 1); err != nil {
				break
			}
		}
		if ctx.Err() != nil {
			break
		}
		body := strings.ReplaceAll(g.c.Payload, "{n}", strconv.Itoa(i))
		if err := send(ctx, []byte(body)); err != nil {
			return sent, 0, err
		}
		sent++
		bar.update(sent, time.Since(start))
	}
	return sent, 0, nil
}

type progress struct {
	w     io.Writer
	total int
	quiet bool
	last  time.Time
}

func newProgress(w io.Writer, total int, quiet bool) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil {
			tty = fi.Mode()&os.ModeCharDevice != 0
		}
	}
	return &progress{w: w, total: total, quiet: quiet || !tty}
}

func (p *progress) update(n int, el time.Duration) {
	if p.quiet || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.draw(n, el)
}

func (p *progress) draw(n int, el time.Duration) {
	const width = 30
	fill := n * width / p.total
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d %3d%% %.1f/s ", strings.Repeat("=", fill), strings.Repeat(" ", width-fill),
		n, p.total, n*100/p.total, float64(n)/max(el.Seconds(), 1e-9))
}

func (p *progress) done(n int, el time.Duration) {
	if p.quiet {
		return
	}
	p.draw(n, el)
	fmt.Fprintln(p.w)
}
