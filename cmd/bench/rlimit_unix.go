//go:build unix

package bench

import "syscall"

// raiseFDLimit raises this process's soft limit on open files to its hard limit and
// returns the soft limit in force.
func raiseFDLimit() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	if r.Cur >= r.Max {
		return r.Cur, nil
	}
	cur := r.Cur
	r.Cur = r.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return cur, err
	}
	return r.Cur, nil
}
