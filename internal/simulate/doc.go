// Package simulate runs a pacer on a simulated clock against a synthetic
// load (pacer simulate), and draws the result as an SVG and a CSV.
//
// Long on purpose: Simulate, SVG. Simulate is one loop over simulated
// time whose steps (arrivals, admissions, the downstream's servers and
// queue, the samples) share the same dozen variables; cut into functions
// they would pass them all around. SVG is mostly the table of its panels
// and series, read top to bottom like the picture it draws.
package simulate
