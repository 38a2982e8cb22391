//go:build !unix

package sqlite

import "os"

// flock is a no-op where advisory locks are not available: one server per data
// directory is then the operator's to ensure.
func flock(*os.File, bool) (busy bool, err error) { return false, nil }
