module github.com/jobpacer/pacer/pacer

go 1.26.0

require (
	github.com/jobpacer/pacer/testutil v0.0.0-00010101000000-000000000000
	go.uber.org/goleak v1.3.0
)

replace github.com/jobpacer/pacer/testutil => ../testutil
