package sinks

import (
	"github.com/jobpacer/pacer/adapters/sink"
	"github.com/jobpacer/pacer/internal/plugin"
)

// Each kind decodes its table and hands it to package sink, which checks
// and defaults every setting and names a bad one in a *pacer.FieldError;
// config.Load maps that to the key's line.
func init() {
	plugin.RegisterSink("exec", func(o plugin.Options) (sink.Sink, error) {
		var c sink.ExecConfig
		if err := o.Decode(&c); err != nil {
			return nil, err
		}
		return sink.NewExec(c)
	})
	plugin.RegisterSink("http", func(o plugin.Options) (sink.Sink, error) {
		var c sink.HTTPConfig
		if err := o.Decode(&c); err != nil {
			return nil, err
		}
		return sink.NewHTTP(c)
	})
	plugin.RegisterSink("log", func(o plugin.Options) (sink.Sink, error) {
		var c sink.LogConfig
		if err := o.Decode(&c); err != nil {
			return nil, err
		}
		return sink.NewLog(c)
	})
}
