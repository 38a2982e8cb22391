package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"testing"
	"time"
)

// TestIdleSocketMemory measures what an idle authenticated socket costs the
// server, with the server and the clients in processes of their own: a `mimids
// serve` and a `mimids bench -idle` against it, which reads the server's heap
// after a forced GC, its goroutine stacks and its goroutines from /metrics before
// and after opening the sockets (docs/performance.md, "Memory per connection").
// An idle socket is one goroutine (its reader) and no read or write buffer.
func TestIdleSocketMemory(t *testing.T) {
	const sockets = 1000
	p := startServer(t, t.TempDir(), freeAddr(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, mimidsBinary(t), "bench", "-url", "http://"+p.addr, "-admin-token", p.adminToken,
		"-clients", "1", "-duration", "0", "-idle", fmt.Sprint(sockets), "-json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	var res struct {
		Idle *struct {
			Sockets    int     `json:"sockets"`
			KiB        float64 `json:"kib_per_idle_socket"`
			Heap       float64 `json:"heap_bytes_per_idle_socket"`
			Stacks     float64 `json:"stack_bytes_per_idle_socket"`
			Goroutines float64 `json:"goroutines_per_idle_socket"`
		} `json:"idle"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || res.Idle == nil {
		t.Fatalf("bench output: %v\n%s", err, stdout.String())
	}
	id := res.Idle
	t.Logf("per idle socket: heap %.0f B, stacks %.0f B, %.2f goroutines, RSS %.1f KiB", id.Heap, id.Stacks, id.Goroutines, id.KiB)
	// Measured: 5.7 KB of heap, one 4 KiB stack (before the tiny buffers: 13.5 KB).
	switch {
	case id.Sockets != sockets:
		t.Fatalf("%d sockets connected, want %d", id.Sockets, sockets)
	case id.Goroutines > 1.1:
		t.Errorf("%.2f goroutines per idle socket, want one", id.Goroutines)
	case id.Heap > 9<<10:
		t.Errorf("%.0f heap bytes per idle socket: more than the 9 KiB bound (the socket's buffers are back?)", id.Heap)
	case id.Stacks > 9<<10:
		t.Errorf("%.0f stack bytes per idle socket", id.Stacks)
	}
}
