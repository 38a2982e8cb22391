//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// setFileSizeLimit sets another process's RLIMIT_FSIZE (prlimit(2)): its writes
// past limit bytes in any file fail with EFBIG, as they would on a full disk. This
// works as root, where a read-only chmod does not stop writes.
func setFileSizeLimit(t *testing.T, pid int, limit uint64) {
	t.Helper()
	rl := syscall.Rlimit{Cur: limit, Max: ^uint64(0)}
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE,
		uintptr(unsafe.Pointer(&rl)), 0, 0, 0); errno != 0 {
		t.Fatalf("prlimit: %v", errno)
	}
}

// TestProcessReadyzNamesStoreWrite makes a running server's store unable to grow
// (its file size limit lowered from outside, a full disk as the server sees it):
// every write fails, and /readyz answers 503 naming store_write while reads still
// work; once writes work again, /readyz is 200 again.
func TestProcessReadyzNamesStoreWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	data, addr := t.TempDir(), freeAddr(t)
	s := startServer(t, data, addr)
	if code, body := readyz(t, addr); code != 200 || body["ready"] != true || check(body, "store_write") != "ok" || check(body, "store_read") != "ok" {
		t.Fatalf("/readyz of a healthy server: %d %v", code, body)
	}
	fi, err := os.Stat(filepath.Join(data, "mimids.db-wal"))
	if err != nil {
		t.Fatal(err)
	}
	setFileSizeLimit(t, s.cmd.Process.Pid, uint64(fi.Size()))
	var body map[string]any
	waitFor(t, "/readyz to report the store's writes down", func() bool {
		var code int
		code, body = readyz(t, addr)
		return code == 503
	})
	t.Logf("/readyz: %v", body)
	if check(body, "store_write") == "ok" || check(body, "store_read") != "ok" || !strings.Contains(body["detail"].(string), "store_write") {
		t.Fatalf("/readyz with a full store: %v", body)
	}
	if code, resp, err := s.post("/admin/v1/notices", s.adminToken, `{"to":{"all":true},"text":"x"}`); err != nil || code == 202 {
		t.Fatalf("a notice was committed to a store that takes no writes: %d %s %v", code, resp, err)
	}
	setFileSizeLimit(t, s.cmd.Process.Pid, ^uint64(0))
	waitFor(t, "/readyz to recover", func() bool { code, _ := readyz(t, addr); return code == 200 })
}
