package main

import "testing"

// The repository holds no file over 450 lines and no function over 80
// outside tests, but those its package doc keeps on purpose.
func TestRepositorySizes(t *testing.T) {
	files, funcs, err := measure([]string{"../../.."}, 450, 80)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range append(unexplained(files), unexplained(funcs)...) {
		t.Errorf("%s: %d lines, and its package doc gives no reason (a \"Long on purpose:\" paragraph naming it)", it.where, it.lines)
	}
	t.Logf("%d files over 450 lines and %d functions over 80, each with its reason", len(files), len(funcs))
}
