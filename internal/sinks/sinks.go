package sinks

import (
	"time"

	"github.com/jobpacer/pacer/adapters/sink"
	"github.com/jobpacer/pacer/internal/plugin"
)

func init() {
	plugin.RegisterSink("exec", func(o plugin.Options) (sink.Sink, error) {
		var c sink.ExecConfig
		if err := o.Decode(&c); err != nil {
			return nil, err
		}
		switch {
		case len(c.Command) == 0 || c.Command[0] == "":
			return nil, o.Errorf("command", `missing: want the program and its arguments, such as ["./handle.sh"]`)
		case c.Timeout != 0 && c.Timeout < time.Millisecond:
			return nil, o.Errorf("timeout", `%v: want a duration with a unit, such as "30s"`, c.Timeout)
		}
		s, err := sink.NewExec(c)
		if err != nil {
			return nil, o.Errorf("", "%v", err)
		}
		return s, nil
	})
	plugin.RegisterSink("http", func(o plugin.Options) (sink.Sink, error) {
		var c sink.HTTPConfig
		if err := o.Decode(&c); err != nil {
			return nil, err
		}
		if c.URL == "" {
			return nil, o.Errorf("url", "missing: want the endpoint, such as \"http://127.0.0.1:8080/jobs\"")
		}
		if c.Timeout != 0 && c.Timeout < time.Millisecond {
			return nil, o.Errorf("timeout", `%v: want a duration with a unit, such as "10s"`, c.Timeout)
		}
		s, err := sink.NewHTTP(c)
		if err != nil {
			return nil, o.Errorf("", "%v", err)
		}
		return s, nil
	})
	plugin.RegisterSink("log", func(o plugin.Options) (sink.Sink, error) {
		var c sink.LogConfig
		if err := o.Decode(&c); err != nil {
			return nil, err
		}
		s, err := sink.NewLog(c)
		if err != nil {
			return nil, o.Errorf("max_payload", "%v", err)
		}
		return s, nil
	})
}
