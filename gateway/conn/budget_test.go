package conn

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// feeder is a Refiller with n messages of size bytes, queued whenever asked.
type feeder struct {
	c       *Conn
	size    int
	mu      sync.Mutex
	next, n int // Guarded by mu.
	refills atomic.Int32
}

func (f *feeder) bind(c *Conn)                                                 { f.c = c }
func (f *feeder) Receive(context.Context, websocket.MessageType, []byte) error { return nil }

func (f *feeder) RefillPending() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.next < f.n
}

func (f *feeder) Refill(context.Context) error {
	f.refills.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.next < f.n {
		msg := make([]byte, f.size)
		copy(msg, fmt.Sprint(f.next))
		if !f.c.TryEnqueue(msg) {
			break
		}
		f.next++
	}
	return nil
}

// TestGroupBudgetWaits: a connection whose group budget is used up by others queues
// nothing, does not spin its writer asking the Refiller, and delivers everything once
// the budget has room again; its bytes go back to the budget once written.
func TestGroupBudgetWaits(t *testing.T) {
	group := NewBudget(64 << 10)
	held := group.Limit()
	if !group.reserve(held) { // another connection of the group holds it all
		t.Fatal("reserve")
	}
	f := &feeder{size: 1000, n: 200}
	s := open(t, setup{cfg: testConfig(), handler: f, before: func(c *Conn) { c.LimitBy(group) }})
	eventually(t, "the writer to give up while the budget is used", func() bool {
		return s.c.starved.Load() && !s.c.writing.Load()
	})
	before := f.refills.Load()
	time.Sleep(100 * time.Millisecond) // what a spinning writer would use
	if got := f.refills.Load(); got != before || got > 2 {
		t.Fatalf("refills while starved: %d, then %d", before, got)
	}
	group.release(held)
	got := readN(t, s.peer, 200)
	for i, m := range got {
		if want := fmt.Sprint(i); m[:len(want)] != want {
			t.Fatalf("message %d starts %q", i, m[:8])
		}
	}
	eventually(t, "the budget back to empty", func() bool { return group.Used() == 0 })
}

// TestBudgetAccounting: Enqueue is charged to the group budget but not refused by
// it; Total is charged, calls OverBudget and refuses nothing; what a connection had
// queued goes back to both when it ends, served or not.
func TestBudgetAccounting(t *testing.T) {
	for _, run := range []bool{true, false} {
		t.Run(fmt.Sprintf("run=%v", run), func(t *testing.T) {
			cfg := testConfig()
			var overs atomic.Int32
			cfg.Total, cfg.OverBudget = NewBudget(1500), func() { overs.Add(1) }
			group := NewBudget(1000)
			var try1, try2, enq bool
			var queued int64
			s := serve(t, setup{cfg: cfg, noRun: !run, before: func(c *Conn) {
				c.LimitBy(group)
				try1 = c.TryEnqueue(make([]byte, 800))
				try2 = c.TryEnqueue(make([]byte, 800)) // over the group: refused
				enq = c.Enqueue(make([]byte, 800))     // charged anyway
				queued = c.Queued()
			}})
			peer := dialPeer(t, s.url)
			s.accepted(t)
			if !try1 || try2 || !enq {
				t.Fatalf("TryEnqueue %v, %v; Enqueue %v: want true, false, true", try1, try2, enq)
			}
			if queued != 1600 {
				t.Fatalf("Queued() = %d, want 1600", queued)
			}
			if overs.Load() != 1 {
				t.Fatalf("OverBudget called %d times, want 1", overs.Load())
			}
			if run {
				readN(t, peer, 2)
				peer.Close(websocket.StatusNormalClosure, "")
			}
			s.result(t, 15*time.Second)
			if group.Used() != 0 || cfg.Total.Used() != 0 {
				t.Fatalf("after the end: group %d, total %d bytes charged", group.Used(), cfg.Total.Used())
			}
			if s.c.TryEnqueue([]byte("late")) || cfg.Total.Used() != 0 {
				t.Fatal("a connection that ended queued a message")
			}
		})
	}
}

// dialPeer dials the test server.
func dialPeer(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	peer, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.CloseNow() })
	return peer
}
