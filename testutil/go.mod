module github.com/jobpacer/pacer/testutil

go 1.26.0

require github.com/jobpacer/pacer/pacer v0.0.0-00010101000000-000000000000

replace github.com/jobpacer/pacer/pacer => ../pacer
