// Package status is what a running pacer run serves on /status: the
// Status types, Fetch to read them from the admin address, and
// WriteTable to print them as pacer status does.
package status
