package worker

import "github.com/urfave/cli/v2"

func simulateCommand() *cli.Command {
	return &cli.Command{Name: "simulate", Usage: "not yet", Action: func(*cli.Context) error { return cli.Exit("pacer simulate: not yet", 1) }}
}
