package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/cmd/mimids/fedproc"
	"github.com/mimids/mimids/protocol"
)

// The faults of a three-node provider, between processes: a node killed, NATS
// restarted, PostgreSQL stopped. The in-process suite (cmd/provider's
// TestClusterPostgres, TestPostgresOutage...) covers the same paths inside one
// process; here the nodes are `mimids serve` processes and the faults are signals.

// resumeLimit bounds the time a killed node's clients take to resume on another
// node (the aim is 5 s; the bound leaves room for a loaded machine).
const resumeLimit = 10 * time.Second

// waitAll polls until every member's Feed has n events.
func waitAll(t *testing.T, ctx context.Context, n int, ms ...*member) {
	t.Helper()
	for _, m := range ms {
		if err := fedproc.Poll(ctx, 20*time.Second, func() (bool, error) { return m.count() >= n, nil }); err != nil {
			t.Fatalf("%s has %d of %d messages: %v", m.name, m.count(), n, err)
		}
	}
}

// maxAcked is one more than the highest acknowledged counter: every subscriber
// must reach it.
func (l *ledger) maxAcked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for c := range l.acked {
		n = max(n, int(c)+1)
	}
	return n
}

// firstAfter is the lowest counter acknowledged for a send begun after at.
func (l *ledger) firstAfter(at time.Time) (uint32, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	best, ok := uint32(0), false
	for c, st := range l.started {
		if st.After(at) && (!ok || c < best) {
			best, ok = c, true
		}
	}
	return best, ok
}

// resumed is when m's Feed handed over counter c, or false.
func (m *member) resumed(c uint32) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if int(c) < len(m.eventAt) {
		return m.eventAt[c], true
	}
	return time.Time{}, false
}

// firstAckAfter is when a send through m was first acknowledged after at.
func (m *member) firstAckAfter(at time.Time) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range m.acks {
		if a.After(at) {
			return a, true
		}
	}
	return time.Time{}, false
}

// waitResumed waits until each of ms resumed after at: the sender got an ack
// for a send, the others' Feeds handed over the first message sent after at. It
// logs each time and returns the longest.
func waitResumed(t *testing.T, ctx context.Context, l *ledger, at time.Time, sender *member, ms ...*member) time.Duration {
	t.Helper()
	var worst time.Duration
	for _, m := range ms {
		var when time.Time
		err := fedproc.Poll(ctx, resumeLimit, func() (bool, error) {
			var ok bool
			if m == sender {
				when, ok = m.firstAckAfter(at)
				return ok, nil
			}
			first, ok := l.firstAfter(at)
			if !ok {
				return false, nil
			}
			when, ok = m.resumed(first)
			return ok, nil
		})
		if err != nil {
			t.Fatalf("%s did not resume within %v of the kill: %v", m.name, resumeLimit, err)
		}
		worst = max(worst, when.Sub(at))
		t.Logf("%s resumed %v after the kill (%d connections)", m.name, when.Sub(at).Round(time.Millisecond), len(m.connects))
	}
	return worst
}

// checkNotices waits until rcv handled every notice in acked, stops it (stop),
// and fails if a notice came back after its ack was committed or was handled
// twice.
func checkNotices(t *testing.T, ctx context.Context, rcv *receiver, acked []string, stop func()) {
	t.Helper()
	if err := fedproc.Poll(ctx, 20*time.Second, func() (bool, error) {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		for _, n := range acked {
			if rcv.texts[n] == 0 {
				return false, fmt.Errorf("notice %s never arrived", n)
			}
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	stop()
	if rcv.violation != "" {
		t.Fatal(rcv.violation)
	}
	for text, n := range rcv.texts {
		if n != 1 {
			t.Fatalf("%s handled %d times", text, n)
		}
	}
}

// TestClusterProcessKill: three nodes, a sender and subscribers on each, and a
// device on node 3 taking notices posted through node 1. Node 3 is killed with
// SIGKILL mid-stream; its clients reconnect through their front to node 1 and
// resume. Every acknowledged message reaches every subscriber once, at its
// counter (a send cut by the kill and retried on node 1 is not sequenced twice);
// every acknowledged notice arrives and none comes back after its ack was
// committed. The time from the kill to the resumption of node 3's clients is
// logged (go test -v) and bounded.
func TestClusterProcessKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	c := startProcCluster(t, 3, func(_ int, cfg map[string]any) { cfg["cluster"].(map[string]any)["poll_interval"] = "1s" })
	fronts := c.frontsFor(t)
	dial := func(i int, name string) *member {
		return dialMember(t, fronts[i].socket(), c.addDevice(c.nodes[0], "alice", name), name)
	}
	senders := []*member{dial(0, "send1"), dial(1, "send2"), dial(2, "send3")}
	watchers := []*member{dial(0, "watch1"), dial(1, "watch2"), dial(2, "watch3a"), dial(2, "watch3b")}
	onNode3 := []*member{senders[2], watchers[2], watchers[3]}
	g := procGroup(t, senders[0], watchers...)
	rcv := &receiver{t: t, url: fronts[2].socket(), token: c.addDevice(c.nodes[0], "alice", "mail3"), texts: map[string]int{}}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rctx, stopRcv := context.WithCancel(ctx)
	var rwg sync.WaitGroup
	rwg.Go(func() { rcv.run(rctx) })
	sctx, stopSends := context.WithCancel(ctx)
	l := newLedger()
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Go(func() { l.sendLoop(sctx, g, s, -1) })
	}
	var mu sync.Mutex
	var notices []string // acknowledged to the producer (202)
	wg.Go(func() {
		for i := 0; sctx.Err() == nil; i++ {
			text := fmt.Sprintf("notice-%d", i)
			body := fmt.Sprintf(`{"to":{"client":"mimi://a.example/d/alice/mail3"},"text":%q}`, text)
			if st, _, err := c.do(c.nodes[0], http.MethodPost, "/admin/v1/notices", body); err == nil && st == http.StatusAccepted {
				mu.Lock()
				notices = append(notices, text)
				mu.Unlock()
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	if err := fedproc.Poll(ctx, 20*time.Second, func() (bool, error) {
		rcv.mu.Lock()
		n := len(rcv.texts)
		rcv.mu.Unlock()
		return watchers[2].count() >= 60 && n >= 20, nil
	}); err != nil {
		t.Fatalf("before the kill: %s has %d messages: %v", watchers[2].name, watchers[2].count(), err)
	}

	c.kill(c.nodes[2])
	killedAt := time.Now()
	worst := waitResumed(t, ctx, l, killedAt, senders[2], onNode3...)
	for i, f := range fronts[2:] {
		if f.served[1].Load() == 0 {
			t.Fatalf("front %d sent nothing to the next node after the kill", i+3)
		}
	}
	target := l.len() + 60
	if err := fedproc.Poll(ctx, 20*time.Second, func() (bool, error) { return l.len() >= target, nil }); err != nil {
		t.Fatalf("sends after the kill: %d of %d: %v", l.len(), target, err)
	}
	stopSends()
	wg.Wait()
	waitAll(t, ctx, l.maxAcked(), watchers...)
	for _, w := range watchers {
		l.checkFeed(t, w)
	}
	mu.Lock()
	acked := append([]string(nil), notices...)
	mu.Unlock()
	checkNotices(t, ctx, rcv, acked, func() { stopRcv(); rwg.Wait() })
	t.Logf("killed node 3: its clients resumed within %v; %d messages acknowledged (%d failed attempts retried), %d notices, nothing lost or repeated",
		worst.Round(time.Millisecond), l.len(), len(l.fails), len(acked))
}

// ready reports whether nd's /readyz answers 200, and its body.
func (c *procCluster) ready(i int) (bool, string) {
	st, body, err := c.get(c.nodes[i], "/readyz")
	return err == nil && st == http.StatusOK, body
}

// waitReady polls every node's /readyz until it answers 200 (up) or 503 naming
// check (down).
func (c *procCluster) waitReady(t *testing.T, ctx context.Context, up bool, check string) {
	t.Helper()
	for i := range c.nodes {
		if err := fedproc.Poll(ctx, 20*time.Second, func() (bool, error) {
			ok, body := c.ready(i)
			return ok == up && (up || strings.Contains(body, check)), fmt.Errorf("/readyz: %s", body)
		}); err != nil {
			t.Fatalf("node %d, waiting for /readyz up=%v (%s): %v", i+1, up, check, err)
		}
	}
}

// TestClusterProcessNATSRestart: the nats-server process is killed while node 1
// and node 2 send, and started again empty on the same port. While it is down,
// the nodes report nats down on /readyz and keep sequencing; when it is back,
// the subscribers on every node catch up from the store with no further send
// (the safety-net poll is an hour), and follow live again, each socket's pushes
// one gapless order.
func TestClusterProcessNATSRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	c := startProcCluster(t, 3, nil)
	fronts := c.frontsFor(t)
	dial := func(i int, name string) *member {
		return dialMember(t, fronts[i].socket(), c.addDevice(c.nodes[0], "alice", name), name)
	}
	s1, s2 := dial(0, "send1"), dial(1, "send2")
	watchers := []*member{dial(0, "watch1"), dial(1, "watch2"), dial(2, "watch3")}
	g := procGroup(t, s1, watchers...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l := newLedger()
	both := func(n int) {
		var wg sync.WaitGroup
		wg.Go(func() { l.sendLoop(ctx, g, s1, n) })
		wg.Go(func() { l.sendLoop(ctx, g, s2, n) })
		wg.Wait()
	}
	both(20)
	waitAll(t, ctx, 40, watchers...)

	c.nats.stop()
	c.waitReady(t, ctx, false, "nats")
	both(20) // the nodes cannot tell each other of these
	if l.len() != 80 {
		t.Fatalf("%d sends acknowledged with NATS down, want 80 in all: %v", l.len(), l.fails)
	}
	restarted := time.Now()
	c.nats.start(t)
	waitAll(t, ctx, 80, watchers...)
	t.Logf("NATS restarted: every node's subscriber caught up from the store within %v", time.Since(restarted).Round(time.Millisecond))
	c.waitReady(t, ctx, true, "")
	both(10)
	waitAll(t, ctx, 100, watchers...)
	for _, w := range watchers {
		l.checkFeed(t, w)
		checkPushes(t, w)
		if st := w.feed.Stats(); st.Resubscribes != 0 {
			t.Fatalf("%s's Feed resubscribed %d times: the node's stream should need no repair", w.name, st.Resubscribes)
		}
	}
}

// TestClusterProcessPostgresStop: PostgreSQL is stopped (an immediate shutdown,
// as a crash) while every node sends. Every node reports the store down on
// /readyz; sends fail with the internal error code, and none is acknowledged
// while the database is down; when it is back the nodes resume, the failed sends
// retried go in once, and every subscriber has every acknowledged message.
func TestClusterProcessPostgresStop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	c := startProcCluster(t, 3, nil)
	fronts := c.frontsFor(t)
	dial := func(i int, name string) *member {
		return dialMember(t, fronts[i].socket(), c.addDevice(c.nodes[0], "alice", name), name)
	}
	senders := []*member{dial(0, "send1"), dial(1, "send2"), dial(2, "send3")}
	watchers := []*member{dial(0, "watch1"), dial(1, "watch2"), dial(2, "watch3")}
	g := procGroup(t, senders[0], watchers...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sctx, stopSends := context.WithCancel(ctx)
	l := newLedger()
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Go(func() { l.sendLoop(sctx, g, s, -1) })
	}
	if err := fedproc.Poll(ctx, 20*time.Second, func() (bool, error) { return l.len() >= 30, nil }); err != nil {
		t.Fatalf("before the stop: %d sends: %v", l.len(), err)
	}
	if err := c.pg.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	c.waitReady(t, ctx, false, "store_write")
	down := time.Now()
	l.mu.Lock()
	failsBefore := len(l.fails)
	l.mu.Unlock()
	if err := fedproc.Poll(ctx, 10*time.Second, func() (bool, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.fails) >= failsBefore+6 && time.Since(down) >= time.Second, nil
	}); err != nil {
		t.Fatalf("no sends failed with the database down: %v", err)
	}
	up := time.Now()
	if err := c.pg.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range senders {
		s.mu.Lock()
		for i, at := range s.acks {
			if s.tries[i].After(down) && at.Before(up) {
				t.Errorf("%s: a send tried at %v was acknowledged at %v, with the database down (%v to %v)", s.name, s.tries[i], at, down, up)
			}
		}
		s.mu.Unlock()
	}
	l.mu.Lock()
	for _, err := range l.fails[failsBefore:] {
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeInternal {
			t.Errorf("a send with the database down failed with %v, want an error answer with the internal code", err)
		}
	}
	example := l.fails[len(l.fails)-1]
	l.mu.Unlock()
	c.waitReady(t, ctx, true, "")
	target := l.len() + 30
	if err := fedproc.Poll(ctx, 20*time.Second, func() (bool, error) { return l.len() >= target, nil }); err != nil {
		t.Fatalf("sends after the database is back: %d of %d: %v", l.len(), target, err)
	}
	resumed := time.Since(up)
	stopSends()
	wg.Wait()
	waitAll(t, ctx, l.maxAcked(), watchers...)
	for _, w := range watchers {
		l.checkFeed(t, w)
	}
	t.Logf("PostgreSQL down %v: sends failed with %q; %d acknowledged in all, 30 more within %v of the restart",
		up.Sub(down).Round(time.Millisecond), example, l.len(), resumed.Round(time.Millisecond))
}
