package cli

import (
	"cmp"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jobpacer/pacer/internal/simulate"
	"github.com/jobpacer/pacer/pacer"
)

// scenarioHelp is simulate's DESCRIPTION: what each scenario does.
func scenarioHelp() string {
	var b strings.Builder
	b.WriteString("The scenarios (--scenario). Times are shares of --duration, paces shares\nof the worker's base pace or of its rate (the ceiling):\n")
	for _, s := range simulate.ScenarioInfos {
		b.WriteString("\n")
		line := "  " + s.Name + ":"
		for _, w := range strings.Fields(strings.ReplaceAll(s.Doc+".", " %", "\x00%")) { // "40 %" stays on one line
			w = strings.ReplaceAll(w, "\x00", " ")
			if len(line)+1+len(w) > 76 {
				b.WriteString(line + "\n")
				line = "     "
			}
			line += " " + w
		}
		b.WriteString(line + "\n")
	}
	b.WriteString("\nThe SVG shades each burst, storm or phase, and each pause; the CSV has\na row every 250 ms of simulated time.")
	return b.String()
}

func simulateCommand() *cli.Command {
	return &cli.Command{
		Name:        "simulate",
		Usage:       "run a worker's pacer on a simulated clock against a scenario; draw pace, factor and backlog to an SVG and a CSV",
		Description: scenarioHelp(),
		Flags: []cli.Flag{
			configFlag(false),
			&cli.StringFlag{Name: "worker", Usage: "the worker to simulate (default: the first)"},
			&cli.StringFlag{Name: "scenario", Value: "burst", Usage: "the `SCENARIO`: " + simulate.Scenarios + " (see DESCRIPTION)"},
			&cli.DurationFlag{Name: "duration", Value: 2 * time.Minute, Usage: "simulated time"},
			&cli.StringFlag{Name: "out", Value: "pace.svg", Usage: "the SVG `FILE`"},
			&cli.StringFlag{Name: "csv", Usage: "the CSV `FILE` (default: --out with .csv)"},
		},
		ArgsUsage: "[CONFIG]",
		Action: func(c *cli.Context) error {
			f, err := load(c)
			if err != nil {
				return err
			}
			w := &f.Workers[0]
			if name := c.String("worker"); name != "" {
				w = nil
				for i := range f.Workers {
					if f.Workers[i].Name == name {
						w = &f.Workers[i]
					}
				}
				if w == nil {
					return cli.Exit(fmt.Sprintf("pacer simulate: no worker %q in %s", name, f.Path), 2)
				}
			}
			sc, err := simulate.ScenarioByName(c.String("scenario"))
			if err != nil {
				return cli.Exit("pacer simulate: "+err.Error(), 2)
			}
			d := c.Duration("duration")
			samples, err := simulate.Simulate(w.Settings, sc, d)
			if err != nil {
				return cli.Exit("pacer simulate: "+err.Error(), 1)
			}
			// A downstream that queues needs the learned concurrency
			// limit: a worker without latency_target runs with "auto".
			auto := ""
			if w.Settings.LatencyTarget == 0 && sc.Config(w.Settings).LatencyTarget == pacer.LatencyAuto {
				auto = `; the worker sets no latency_target: this run uses latency_target = "auto"`
			}
			out := c.String("out")
			csvPath := cmp.Or(c.String("csv"), strings.TrimSuffix(out, ".svg")+".csv")
			title := fmt.Sprintf("pacer simulate: worker %q, scenario %s (rate %g/s, base %g/s)", w.Name, sc.Name, w.Settings.Rate, w.Settings.Base)
			if mif := w.Settings.MaxInFlight; mif > 0 && sc.Config(w.Settings).LatencyTarget != 0 {
				title = strings.TrimSuffix(title, ")") + fmt.Sprintf(", max_in_flight %d)", mif)
			}
			if auto != "" {
				title += `, latency_target "auto"`
			}
			if err := os.WriteFile(out, []byte(simulate.SVG(title, samples, sc.Timed(d).Marks...)), 0o644); err != nil {
				return cli.Exit("pacer simulate: "+err.Error(), 1)
			}
			if err := simulate.WriteCSV(csvPath, samples); err != nil {
				return cli.Exit("pacer simulate: "+err.Error(), 1)
			}
			last := samples[len(samples)-1]
			fmt.Fprintf(c.App.Writer, "simulated %v of %q (%s): %d jobs arrived, %d done, %d throttled, backlog at the end %d%s; wrote %s and %s\n",
				d, w.Name, sc.Name, last.Arrived, last.Done, last.Throttled, last.Backlog, auto, out, csvPath)
			return nil
		},
	}
}
