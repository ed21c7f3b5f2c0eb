package runner

import (
	"context"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jobpacer/pacer/internal/testenv"
)

// Issue 24 item 10: at a downstream's limit the pace is cut every 1.5 s;
// the log has one INFO line for the first cut, then one a minute that
// sums up the cuts since (each cut a DEBUG line), and the last sum when
// the run stops: the cuts of the lines add up to every cut. The records'
// times are made up: no clock runs.
func TestCutsSummedUpOnceAMinute(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		t.Run(level.String(), func(t *testing.T) {
			var buf testenv.SyncBuffer
			c := newCutSummary(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}).WithAttrs([]slog.Attr{slog.String("worker", "emails")}))
			log := slog.New(c)
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			cut := func(at time.Duration, more int) {
				r := slog.NewRecord(t0.Add(at), slog.LevelInfo, "pacer: pace lowered", 0)
				r.AddAttrs(slog.String("reason", "pushback"), slog.Float64("from", 30), slog.Float64("to", 27))
				if more > 0 {
					r.AddAttrs(slog.Int("more_cuts", more))
				}
				if err := log.Handler().Handle(context.Background(), r); err != nil {
					t.Fatal(err)
				}
			}
			// 80 cuts 1.5 s apart (one sums up 2 more, as package pacer
			// does for cuts within a second), a pause, the run stops at
			// 120 s; a cut after a quiet spell.
			for i := range 80 {
				more := 0
				if i == 10 {
					more = 2
				}
				cut(time.Duration(i)*1500*time.Millisecond, more)
			}
			pause := slog.NewRecord(t0.Add(100*time.Second), slog.LevelInfo, "pacer: paused by pushback", 0)
			_ = log.Handler().Handle(context.Background(), pause)
			c.flush(t0.Add(120 * time.Second))
			cut(300*time.Second, 0)

			out := buf.String()
			info := regexp.MustCompile(`time=\S+ level=INFO msg="pacer: pace lowered[^"]*" worker=emails[^\n]*`).FindAllString(out, -1)
			want := []string{
				`time=2026-01-01T00:00:00.000Z level=INFO msg="pacer: pace lowered" worker=emails reason=pushback from=30 to=27`,
				`time=2026-01-01T00:01:00.000Z level=INFO msg="pacer: pace lowered (summary)" worker=emails cuts=41 in=1m0s note="at the downstream's limit cuts are the normal state; each is a debug line" last_reason=pushback last_from=30 last_to=27`,
				`time=2026-01-01T00:02:00.000Z level=INFO msg="pacer: pace lowered (summary)" worker=emails cuts=40 in=1m0s note="at the downstream's limit cuts are the normal state; each is a debug line" last_reason=pushback last_from=30 last_to=27`,
				`time=2026-01-01T00:05:00.000Z level=INFO msg="pacer: pace lowered" worker=emails reason=pushback from=30 to=27`,
			}
			if strings.Join(info, "\n") != strings.Join(want, "\n") {
				t.Errorf("INFO cut lines:\n%s\nwant:\n%s", strings.Join(info, "\n"), strings.Join(want, "\n"))
			}
			sum := 2 // the two plain lines
			for _, m := range regexp.MustCompile(`cuts=(\d+)`).FindAllStringSubmatch(strings.Join(info, "\n"), -1) {
				n, _ := strconv.Atoi(m[1])
				sum += n
			}
			if sum != 83 {
				t.Errorf("the INFO lines sum up %d cuts, want 83 (80 lines, one with more_cuts=2, and one after)", sum)
			}
			if !strings.Contains(out, `level=INFO msg="pacer: paused by pushback" worker=emails`) {
				t.Errorf("the pause line is not as it was:\n%s", out)
			}
			debug := strings.Count(out, `level=DEBUG msg="pacer: pace lowered"`)
			if wantDebug := map[slog.Level]int{slog.LevelInfo: 0, slog.LevelDebug: 79}[level]; debug != wantDebug {
				t.Errorf("%d DEBUG cut lines at level %v, want %d", debug, level, wantDebug)
			}
		})
	}
}
