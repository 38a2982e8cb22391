//go:build !unix

package conn

const nonBlockingWrites = false

func writeNonBlocking(uintptr, []byte) (int, error) { panic("conn: no non-blocking writes here") }

func readNonBlocking(uintptr, []byte) (int, error) { panic("conn: no non-blocking reads here") }
