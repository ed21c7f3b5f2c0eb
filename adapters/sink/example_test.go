package sink_test

import (
	"context"
	"fmt"

	"github.com/jobpacer/pacer/adapters/sink"
	"github.com/jobpacer/pacer/pacer"
)

func ExampleExec() {
	s, err := sink.NewExec(sink.ExecConfig{Command: []string{"sh", "-c", "exit 75"}})
	if err != nil {
		panic(err)
	}
	err = s.Handle(context.Background(), sink.Job{ID: "1", Payload: []byte("{}")})
	_, throttled := pacer.IsThrottled(err)
	fmt.Println("throttled:", throttled)
	// Output: throttled: true
}
