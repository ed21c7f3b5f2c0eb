package cli

import (
	"cmp"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jobpacer/pacer/internal/simulate"
)

func simulateCommand() *cli.Command {
	return &cli.Command{
		Name:  "simulate",
		Usage: "run a worker's pacer on a simulated clock against a scenario; draw pace, factor and backlog to an SVG and a CSV",
		Flags: []cli.Flag{
			configFlag(false),
			&cli.StringFlag{Name: "worker", Usage: "the worker to simulate (default: the first)"},
			&cli.StringFlag{Name: "scenario", Value: "burst", Usage: simulate.Scenarios},
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
			samples, err := simulate.Simulate(w.Settings, sc, c.Duration("duration"))
			if err != nil {
				return cli.Exit("pacer simulate: "+err.Error(), 1)
			}
			out := c.String("out")
			csvPath := cmp.Or(c.String("csv"), strings.TrimSuffix(out, ".svg")+".csv")
			title := fmt.Sprintf("pacer simulate: worker %q, scenario %s (rate %g/s, base %g/s)", w.Name, sc.Name, w.Settings.Rate, w.Settings.Base)
			if err := os.WriteFile(out, []byte(simulate.SVG(title, samples)), 0o644); err != nil {
				return cli.Exit("pacer simulate: "+err.Error(), 1)
			}
			if err := simulate.WriteCSV(csvPath, samples); err != nil {
				return cli.Exit("pacer simulate: "+err.Error(), 1)
			}
			last := samples[len(samples)-1]
			fmt.Fprintf(c.App.Writer, "simulated %v of %q (%s): %d jobs arrived, %d done, %d throttled, backlog at the end %d; wrote %s and %s\n",
				c.Duration("duration"), w.Name, sc.Name, last.Arrived, last.Done, last.Throttled, last.Backlog, out, csvPath)
			return nil
		},
	}
}
