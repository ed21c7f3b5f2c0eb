// Package simulate runs a pacer on a simulated clock against a synthetic
// load (pacer simulate), and draws the result as an SVG and a CSV.
package simulate
