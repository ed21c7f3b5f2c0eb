package runner

import (
	"context"
	"sync"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// meter measures the jobs per second done (Stats.Succeeded, the DONE of
// status and /metrics), over the last 5 s.
type meter struct {
	mu   sync.Mutex // guards ring, rate
	ring []uint64
	rate float64
}

const meterWindow = 5

func (m *meter) run(ctx context.Context, p *pacer.Pacer) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d := p.Stats().Succeeded
		m.mu.Lock()
		m.ring = append(m.ring, d)
		if len(m.ring) > meterWindow+1 {
			m.ring = m.ring[1:]
		}
		if n := len(m.ring); n > 1 {
			m.rate = float64(m.ring[n-1]-m.ring[0]) / float64(n-1)
		}
		m.mu.Unlock()
	}
}

func (m *meter) get() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rate
}
