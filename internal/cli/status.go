package cli

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/internal/status"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		ArgsUsage: "[CONFIG]",
		Usage:     "show the workers of a running pacer run (pace, factor, backlog, in flight, done, throttled, dropped)",
		Flags: []cli.Flag{
			adminFlag("the admin `ADDR` of the running pacer run (default: the config's admin, else " + config.DefaultAdmin + ")"),
			configFlag(false),
			&cli.BoolFlag{Name: "json", Usage: "print /status as JSON, once"},
			&cli.BoolFlag{Name: "watch", Aliases: []string{"w"}, Usage: "refresh the table every --interval until interrupted"},
			&cli.DurationFlag{Name: "interval", Value: time.Second, Usage: "refresh period of --watch"},
		},
		Action: func(c *cli.Context) error {
			addr, err := adminAddr(c)
			if err != nil {
				return err
			}
			for {
				st, raw, err := status.Fetch(addr)
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
				status.WriteTable(c.App.Writer, addr, st)
				if !c.Bool("watch") {
					return nil
				}
				time.Sleep(c.Duration("interval"))
			}
		},
	}
}
