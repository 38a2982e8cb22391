package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/mimids/fedproc"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

// member is one of alice's devices, connected through a front: a Feed of the
// group's partition (resubscribed after every reconnect), the raw pushes of its
// sockets, and the notices its mailbox handler took.
type member struct {
	name string
	c    *client.Client
	feed *client.Feed

	mu       sync.Mutex
	events   []client.FeedEvent // what the Feed handed over, in order
	eventAt  []time.Time
	pushes   []uint32 // counters of the raw pushes, in arrival order (across sockets)
	notices  []string
	connects []time.Time // each authentication
	acks     []time.Time // each send acknowledged to it
	tries    []time.Time // when the attempt that got each ack began (acks[i])
}

func dialMember(t testing.TB, url, token, name string) *member {
	t.Helper()
	m := &member{name: name}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := client.Config{URL: url, Token: token, Handler: m.onDelivery, MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond, HandshakeTimeout: 10 * time.Second,
		OnPush: m.onPush, OnConnect: func(client.SessionInfo) { m.mu.Lock(); m.connects = append(m.connects, time.Now()); m.mu.Unlock() }}
	var err error
	if m.c, m.feed, err = client.DialFeed(ctx, cfg, client.FeedConfig{Handler: m.onEvent}); err != nil {
		t.Fatalf("dial %s: %v", name, err)
	}
	t.Cleanup(func() {
		m.feed.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.c.Close(ctx)
	})
	return m
}

func (m *member) onEvent(_ context.Context, ev *client.FeedEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, *ev)
	m.eventAt = append(m.eventAt, time.Now())
}

func (m *member) onPush(f protocol.Frame) {
	if p, ok := f.(*protocol.Push); ok {
		m.mu.Lock()
		m.pushes = append(m.pushes, p.Counter)
		m.mu.Unlock()
	}
}

func (m *member) onDelivery(_ context.Context, d *client.Delivery) error {
	if n, err := d.Notice(); err == nil {
		m.mu.Lock()
		m.notices = append(m.notices, n.Text)
		m.mu.Unlock()
	}
	return nil
}

func (m *member) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.events)
}

func (m *member) noticeCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.notices)
}

// ledger is what the senders were acknowledged: message by counter.
type ledger struct {
	mu      sync.Mutex
	acked   map[uint32][]byte
	started map[uint32]time.Time // when the acknowledged send began
	fails   []error              // sends that failed (each retried or given up)
}

func newLedger() *ledger {
	return &ledger{acked: map[uint32][]byte{}, started: map[uint32]time.Time{}}
}

func (l *ledger) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// send sends one new application message through m, retrying the same message
// (the hub answers a retry with the first counter) until it is acknowledged or
// ctx ends; it returns whether it was.
func (l *ledger) send(ctx context.Context, g *mlstest.Group, m *member) bool {
	msg, err := g.RandomApplication(60)
	if err != nil {
		panic(err)
	}
	start := time.Now()
	for ctx.Err() == nil {
		try := time.Now()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ctr, err := m.c.Send(sctx, &protocol.SendRequest{Message: msg, PartitionKey: g.PartitionKey})
		cancel()
		l.mu.Lock()
		if err == nil {
			if prev, ok := l.acked[ctr]; ok && !bytes.Equal(prev, msg) {
				l.fails = append(l.fails, fmt.Errorf("counter %d acknowledged for two messages", ctr))
			}
			l.acked[ctr], l.started[ctr] = msg, start
			l.mu.Unlock()
			m.mu.Lock()
			m.acks, m.tries = append(m.acks, time.Now()), append(m.tries, try)
			m.mu.Unlock()
			return true
		}
		l.fails = append(l.fails, err)
		l.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
}

// sendLoop sends through m until ctx ends or n messages are acknowledged (n < 0:
// no bound).
func (l *ledger) sendLoop(ctx context.Context, g *mlstest.Group, m *member, n int) {
	for i := 0; n < 0 || i < n; i++ {
		if !l.send(ctx, g, m) {
			return
		}
	}
}

// checkFeed fails unless m's Feed handed over the partition's log from counter 0
// without gap or repeat, holding every acknowledged message at its counter and no
// message twice. It returns how many events it checked.
func (l *ledger) checkFeed(t *testing.T, m *member) int {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[string]uint32{}
	for i, ev := range m.events {
		if ev.Reset || ev.Terminated || ev.Counter != uint32(i) {
			t.Fatalf("%s: event %d is counter %d (reset %v, end %v); want counter %d", m.name, i, ev.Counter, ev.Reset, ev.Terminated, i)
		}
		msg, err := ev.Decode()
		if err != nil {
			t.Fatalf("%s: event %d: %v", m.name, i, err)
		}
		if c, dup := seen[string(msg.Message)]; dup {
			t.Fatalf("%s: the message at counter %d is also at counter %d: sequenced twice", m.name, i, c)
		}
		seen[string(msg.Message)] = ev.Counter
		if want, ok := l.acked[ev.Counter]; ok && !bytes.Equal(want, msg.Message) {
			t.Fatalf("%s: counter %d holds another message than the one acknowledged", m.name, i)
		}
	}
	for ctr := range l.acked {
		if int(ctr) >= len(m.events) {
			t.Fatalf("%s: acknowledged counter %d never arrived (%d events)", m.name, ctr, len(m.events))
		}
	}
	return len(m.events)
}

// checkPushes fails unless m's raw pushes (no reconnect: one socket) ran from
// counter 0 with no gap or repeat: the node itself delivered one gapless order.
func checkPushes(t *testing.T, m *member) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, c := range m.pushes {
		if c != uint32(i) {
			t.Fatalf("%s: push %d has counter %d: the node's stream had a gap or a repeat", m.name, i, c)
		}
	}
}

// procGroup is alice's group, created through creator, with each member's Feed
// following its partition from counter 0.
func procGroup(t testing.TB, creator *member, subs ...*member) *mlstest.Group {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	g, err := mlstest.NewGroup(mlstest.Options{Identities: []string{"mimi://a.example/u/alice"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := creator.c.CreateGroup(ctx, &protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey}); err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		if _, err := s.feed.Subscribe(ctx, g.PartitionKey, 0); err != nil {
			t.Fatalf("%s subscribes: %v", s.name, err)
		}
	}
	return g
}

// TestClusterProcesses runs three `mimids serve` nodes of a.example on one
// PostgreSQL database and one nats-server process, with a sender and a
// subscriber on each node: the sends of all three reach every subscriber in one
// gapless order; a notice posted through node 1's admin API reaches a device on
// node 3; the device revoked through node 1 loses its socket on node 3.
func TestClusterProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	c := startProcCluster(t, 3, nil)
	fronts := c.frontsFor(t)
	var senders, watchers []*member
	for i, f := range fronts {
		for _, kind := range []string{"send", "watch"} {
			name := fmt.Sprintf("%s%d", kind, i+1)
			m := dialMember(t, f.socket(), c.addDevice(c.nodes[0], "alice", name), name)
			if kind == "send" {
				senders = append(senders, m)
			} else {
				watchers = append(watchers, m)
			}
		}
		if f.served[0].Load() != 2 {
			t.Fatalf("front %d sent %d connections to node %d, want 2", i, f.served[0].Load(), i+1)
		}
	}
	g := procGroup(t, senders[0], watchers...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := newLedger()
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Go(func() { l.sendLoop(ctx, g, s, 30) })
	}
	wg.Wait()
	if l.len() != 90 || len(l.fails) != 0 {
		t.Fatalf("%d sends acknowledged of 90; failures %v", l.len(), l.fails)
	}
	for _, w := range watchers {
		if err := fedproc.Poll(ctx, 15*time.Second, func() (bool, error) { return w.count() >= 90, nil }); err != nil {
			t.Fatalf("%s got %d of 90 messages: %v", w.name, w.count(), err)
		}
		l.checkFeed(t, w)
		checkPushes(t, w)
	}

	// A notice through node 1 to the device on node 3.
	w3 := watchers[2]
	body := `{"to":{"client":"mimi://a.example/d/alice/watch3"},"text":"from node 1"}`
	if st, out, err := c.do(c.nodes[0], http.MethodPost, "/admin/v1/notices", body); err != nil || st != http.StatusAccepted {
		t.Fatalf("notice through node 1: %d %s %v", st, out, err)
	}
	if err := fedproc.Poll(ctx, 10*time.Second, func() (bool, error) { return w3.noticeCount() == 1, nil }); err != nil {
		t.Fatalf("the device on node 3 got %d notices: %v", w3.noticeCount(), err)
	}

	// Its token revoked through node 1: its socket on node 3 closes.
	start := time.Now()
	if st, out, err := c.do(c.nodes[0], http.MethodDelete, "/admin/v1/users/alice/clients/watch3", ""); err != nil || st != http.StatusOK {
		t.Fatalf("revoke through node 1: %d %s %v", st, out, err)
	}
	select {
	case <-w3.c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked device's socket on node 3 stays open")
	}
	if err := w3.c.Err(); !errors.Is(err, client.ErrRevoked) {
		t.Fatalf("the device on node 3 stopped with %v, want revoked", err)
	}
	t.Logf("90 sends from 3 nodes in one order on each; revoked through node 1, closed on node 3 after %v",
		time.Since(start).Round(time.Millisecond))
}
