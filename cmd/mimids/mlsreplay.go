package main

import (
	"fmt"
	"io"
)

// mlsReplay implements `mimids mls replay`. This placeholder is replaced by
// the public group replay (MLS-tree's work).
func mlsReplay(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "replay: not available yet")
	return 2
}
