package sink_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Handle starts goroutines (os/exec's copiers, net/http's connections):
// none may outlive the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
