package worker

import "github.com/jobpacer/pacer/internal/cli"

// Main runs the pacer command with args (os.Args: run, check, status,
// simulate, enqueue, publish; see pacer help) with the built-in source
// and sink kinds and those registered so far, and returns its exit code:
// 0, 1 for a failure, 2 for a bad config. pacer run stops on SIGINT or
// SIGTERM (a second one exits at once) and reloads rate and base on
// SIGHUP.
//
// The broker address "embedded" works only in the pacer command itself
// (cmd/pacer): a program built on Main does not link the in-process
// brokers, and names real addresses.
func Main(args []string) int { return cli.Main(args) }
