// Package bench holds the load generators behind `mimids bench` (the mailbox path:
// durable notices to many connected clients, and memory per idle socket) and
// `mimids bench-group` (the hub: sequencing into groups and fan-out of pushes). Both
// drive a running server on this machine through its admin API and client socket,
// as a client would: the server may be any mimids build, and nothing here runs
// inside it.
package bench

import "io"

// Command runs `mimids bench` with args (the words after the verb) and returns
// its exit code.
func Command(args []string, stdout, stderr io.Writer) int { return benchCommand(args, stdout, stderr) }

// GroupCommand runs `mimids bench-group` with args and returns its exit code.
func GroupCommand(args []string, stdout, stderr io.Writer) int {
	return benchGroupCommand(args, stdout, stderr)
}
