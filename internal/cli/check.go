package cli

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

func checkCmd(c *cli.Context) error {
	f, err := loadOrExit(c.String("config"))
	if err != nil {
		return err
	}
	var names []string
	for _, w := range f.Workers {
		fleet := ""
		if w.Fleet != "" {
			fleet = fmt.Sprintf(", fleet %s %g/s", w.Fleet, f.Fleets[w.Fleet].Rate)
		}
		names = append(names, fmt.Sprintf("%s (%s → %s, rate %g/s, base %g/s%s)", w.Name, w.Source.Kind(), w.Sink.Kind(), w.Rate, w.Base, fleet))
	}
	fmt.Fprintf(c.App.Writer, "%s: ok: %d worker(s): %s\n", f.Path, len(f.Workers), strings.Join(names, "; "))
	return nil
}
