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

// readNonBlocking reads what a non-blocking socket has into p (EAGAIN: nothing).
func readNonBlocking(fd uintptr, p []byte) (int, error) {
	for {
		n, err := syscall.Read(int(fd), p)
		if err == syscall.EINTR {
			continue
		}
		if n < 0 {
			n = 0
		}
		return n, err
	}
}
