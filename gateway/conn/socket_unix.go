//go:build unix

package conn

import "syscall"

const nonBlockingWrites = true

// writeNonBlocking writes p to a non-blocking socket until it would block.
func writeNonBlocking(fd uintptr, p []byte) (n int, err error) {
	for n < len(p) {
		m, err := syscall.Write(int(fd), p[n:])
		switch {
		case m > 0:
			n += m
		case err == syscall.EINTR:
		case err == nil || err == syscall.EAGAIN: // full: the flusher waits for room
			return n, nil
		default:
			return n, err
		}
	}
	return n, nil
}
