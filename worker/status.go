package worker

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jobpacer/pacer/internal/config"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the workers of a running pacer run (pace, factor, backlog, in flight, done, throttled, dropped)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "admin", Value: config.DefaultAdmin, Usage: "the admin `ADDR` of the running pacer run"},
			&cli.BoolFlag{Name: "json", Usage: "print /status as JSON, once"},
			&cli.BoolFlag{Name: "watch", Aliases: []string{"w"}, Usage: "refresh the table every --interval until interrupted"},
			&cli.DurationFlag{Name: "interval", Value: time.Second, Usage: "refresh period of --watch"},
		},
		Action: func(c *cli.Context) error {
			addr := c.String("admin")
			for {
				st, raw, err := FetchStatus(addr)
				if err != nil {
					return cli.Exit("pacer status: "+err.Error(), 1)
				}
				if c.Bool("json") {
					_, err := c.App.Writer.Write(raw)
					return err
				}
				if c.Bool("watch") {
					fmt.Fprint(c.App.Writer, "\033[H\033[2J") // clear the screen
				}
				WriteTable(c.App.Writer, addr, st)
				if !c.Bool("watch") {
					return nil
				}
				time.Sleep(c.Duration("interval"))
			}
		},
	}
}

// FetchStatus reads /status from the admin address of a running pacer
// run; it returns the decoded status and the raw JSON.
func FetchStatus(addr string) (Status, []byte, error) {
	var st Status
	url := addr
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(url + "/status")
	if err != nil {
		return st, nil, fmt.Errorf("%w (is `pacer run` running with admin = %q?)", err, addr)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return st, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return st, nil, fmt.Errorf("GET %s/status: %s", url, resp.Status)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, nil, fmt.Errorf("GET %s/status: %w", url, err)
	}
	return st, raw, nil
}

// WriteTable writes st as a table, one worker a row.
func WriteTable(w io.Writer, addr string, st Status) {
	state := "running"
	if st.Draining {
		state = "draining"
	}
	fmt.Fprintf(w, "pacer at %s: %s, up %s\n", addr, state, (time.Duration(st.Uptime) * time.Second).Round(time.Second))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "WORKER\tSOURCE→SINK\tPACE/s\tDONE/s\tCEILING/s\tFACTOR\tBACKLOG\tIN FLIGHT\tDONE\tFAILED\tTHROTTLED\tDROPPED\tPAUSED\t")
	for _, ws := range st.Workers {
		paused := "-"
		if ws.PausedUntil != nil {
			if d := time.Until(*ws.PausedUntil); d > 0 {
				paused = d.Round(100 * time.Millisecond).String()
			}
		}
		fmt.Fprintf(tw, "%s\t%s→%s\t%.1f\t%.1f\t%g\t%.2f\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n",
			ws.Name, ws.Source, ws.Sink, ws.Pace, ws.Measured, ws.Ceiling, ws.Factor, ws.Backlog, ws.InFlight,
			ws.Succeeded, ws.Failed, ws.Throttled, ws.Dropped, paused)
	}
	tw.Flush()
	if len(st.Fleets) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "FLEET\tMODE\tRATE/s\tPROCESSES\tSHARE/s\tDONE HERE\tREDIS CALLS\tFALLBACKS\tWORKERS HERE\t")
	for _, f := range st.Fleets {
		mode := f.Mode
		if f.FallbackSince != nil {
			mode += " " + time.Since(*f.FallbackSince).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%g\t%d\t%.1f\t%d\t%d\t%d\t%s\t\n", f.Name, mode, f.Rate, f.Processes, f.Share,
			f.Dispatched, f.RedisCalls, f.Fallbacks, strings.Join(f.Workers, ","))
	}
	tw.Flush()
	for _, f := range st.Fleets {
		if f.Mode != "redis" && f.LastError != "" {
			fmt.Fprintf(w, "fleet %s: %s: %s\n", f.Name, f.Mode, f.LastError)
		}
	}
}
