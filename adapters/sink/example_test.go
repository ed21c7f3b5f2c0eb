package sink_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

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

// RateLimitAdvice reads what an answer says is left; the http sink hands
// it to the context's Advisor (pacer run: the worker's Pacer.Advise).
func ExampleRateLimitAdvice() {
	h := http.Header{}
	h.Set("X-RateLimit-Remaining", "42")
	h.Set("X-RateLimit-Reset", "3")
	remaining, reset, ok := sink.RateLimitAdvice(h, time.Now())
	fmt.Println(remaining, reset, ok)
	// Output: 42 3s true
}
