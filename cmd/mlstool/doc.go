// Package mlstool holds `mimids mls`: tools that read RFC 9420 messages offline.
// decode prints an MLSMessage or a bare struct as JSON, keypackage validates a
// KeyPackage and describes it, and replay follows a group's public state from a
// GroupInfo through PublicMessage commits, as a Delivery Service does. They use
// only the mls package and touch no store or network.
package mlstool

import "io"

// Command runs `mimids mls` with args (the words after "mls") and returns its
// exit code.
func Command(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return mlsCommand(args, stdin, stdout, stderr)
}
