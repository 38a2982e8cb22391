package natsbus_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/natsbus"
	"github.com/mimids/mimids/natsbus/natstest"
)

// node records what one node's bus delivered to it: the targets of Run.
type node struct {
	bus *natsbus.Bus

	mu      sync.Mutex
	entries []hub.Entry
	pokes   []string // masked keys poked; "" for every partition
	boxes   []int64  // clients whose mailboxes were poked; 0 for all
	closed  []int64
	lengths map[string]hub.PartitionInfo // what Partition answers (the "store")
}

func (n *node) Deliver(e hub.Entry) { n.mu.Lock(); n.entries = append(n.entries, e); n.mu.Unlock() }
func (n *node) Poke(masked []byte) {
	n.mu.Lock()
	n.pokes = append(n.pokes, string(masked))
	n.mu.Unlock()
}
func (n *node) Partition(_ context.Context, masked []byte) (hub.PartitionInfo, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lengths[string(masked)], nil
}

type boxes struct{ n *node }

func (b boxes) Poke(id int64) { b.n.mu.Lock(); b.n.boxes = append(b.n.boxes, id); b.n.mu.Unlock() }

func (n *node) CloseClient(id int64, _ int, _ string) int {
	n.mu.Lock()
	n.closed = append(n.closed, id)
	n.mu.Unlock()
	return 1
}

func (n *node) snapshot() (entries []hub.Entry, pokes []string, boxes, closed []int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]hub.Entry(nil), n.entries...), append([]string(nil), n.pokes...),
		append([]int64(nil), n.boxes...), append([]int64(nil), n.closed...)
}

// startNode connects a bus to the server and runs it until the test ends.
func startNode(t *testing.T, s *natstest.Server, cfg natsbus.Config) *node {
	t.Helper()
	cfg.URL = s.URL()
	b, err := natsbus.Connect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{bus: b, lengths: map[string]hub.PartitionInfo{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, natsbus.Targets{Hub: n, Mailbox: boxes{n}, Sockets: n}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	waitFor(t, "the bus connects", func() bool { return b.Health() == nil })
	// The first connection resyncs (every partition and mailbox poked once): let it
	// pass, and start the record after it.
	waitFor(t, "the first resync", func() bool { _, p, bx, _ := n.snapshot(); return len(p) == 1 && len(bx) == 1 })
	n.mu.Lock()
	n.pokes, n.boxes = nil, nil
	n.mu.Unlock()
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// watchConfirmed watches masked on n and waits for the confirmation's poke.
func watchConfirmed(t *testing.T, n *node, masked []byte) func() {
	t.Helper()
	cancel := n.bus.WatchPartition(masked)
	waitFor(t, "the watch is confirmed", func() bool {
		_, pokes, _, _ := n.snapshot()
		for _, p := range pokes {
			if p == string(masked) {
				return true
			}
		}
		return false
	})
	return cancel
}

// TestPartitionEntries: an entry committed on node 1 reaches node 2 whole when it is
// small, as a poke when it is larger than MaxInline or the terminated event; nothing
// comes for a partition node 2 does not watch, or no longer watches.
func TestPartitionEntries(t *testing.T) {
	s := natstest.Start(t)
	n1 := startNode(t, s, natsbus.Config{NodeID: "1", PollInterval: time.Hour, MaxInline: 1024})
	n2 := startNode(t, s, natsbus.Config{NodeID: "2", PollInterval: time.Hour})
	masked, other := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	cancel := watchConfirmed(t, n2, masked)

	small := hub.Entry{Masked: masked, Counter: 0, ContentType: 1, Message: []byte("hello"), NextMasked: other, GroupInfo: []byte("gi")}
	n1.bus.PartitionCommitted(hub.Entry{Masked: other, Counter: 0, Message: []byte("unwatched")})
	n1.bus.PartitionCommitted(small)
	waitFor(t, "the small entry", func() bool { es, _, _, _ := n2.snapshot(); return len(es) == 1 })
	es, _, _, _ := n2.snapshot()
	if got := es[0]; !bytes.Equal(got.Masked, masked) || got.Counter != 0 || got.ContentType != 1 || string(got.Message) != "hello" ||
		!bytes.Equal(got.NextMasked, other) || string(got.GroupInfo) != "gi" || got.Public || got.Terminated {
		t.Fatalf("node 2 got %+v, want %+v", got, small)
	}

	_, before, _, _ := n2.snapshot()
	n1.bus.PartitionCommitted(hub.Entry{Masked: masked, Counter: 1, Message: bytes.Repeat([]byte{9}, 4096)})
	n1.bus.PartitionCommitted(hub.Entry{Masked: masked, Counter: 2, Terminated: true})
	waitFor(t, "two pokes", func() bool { _, p, _, _ := n2.snapshot(); return len(p) == len(before)+2 })
	es, pokes, _, _ := n2.snapshot()
	if len(es) != 1 || pokes[len(pokes)-1] != string(masked) {
		t.Fatalf("node 2 got %d entries and pokes %q", len(es), pokes)
	}

	cancel()
	n2.bus.Revoked(5) // a round trip through the server: the unsubscribe is in effect after it
	waitFor(t, "node 1 hears node 2", func() bool { _, _, _, c := n1.snapshot(); return len(c) == 1 })
	n1.bus.PartitionCommitted(hub.Entry{Masked: masked, Counter: 3, Message: []byte("late")})
	n1.bus.Revoked(6)
	waitFor(t, "node 2 hears node 1", func() bool { _, _, _, c := n2.snapshot(); return len(c) == 1 })
	if es, _, _, _ := n2.snapshot(); len(es) != 1 {
		t.Fatalf("node 2 got %d entries after it stopped watching", len(es))
	}
}

// TestMailboxAndRevocations: a small Enqueue pokes each recipient's mailbox on the
// nodes that watch it; a large one pokes every mailbox once; revocations reach every
// node but the sender.
func TestMailboxAndRevocations(t *testing.T) {
	s := natstest.Start(t)
	n1 := startNode(t, s, natsbus.Config{NodeID: "1", PollInterval: time.Hour})
	n2 := startNode(t, s, natsbus.Config{NodeID: "2", PollInterval: time.Hour})
	n3 := startNode(t, s, natsbus.Config{NodeID: "3", PollInterval: time.Hour})
	n2.bus.WatchMailbox(7)
	waitFor(t, "the mailbox watch is confirmed", func() bool { _, _, b, _ := n2.snapshot(); return len(b) == 1 && b[0] == 7 })

	n1.bus.MailboxCommitted([]mailbox.Entry{{ClientID: 7, Seq: 1}, {ClientID: 8, Seq: 1}})
	waitFor(t, "client 7's poke", func() bool { _, _, b, _ := n2.snapshot(); return len(b) == 2 })
	var all []mailbox.Entry
	for i := range 100 {
		all = append(all, mailbox.Entry{ClientID: int64(100 + i), Seq: 1})
	}
	n1.bus.MailboxCommitted(all)
	waitFor(t, "every mailbox poked", func() bool { _, _, b, _ := n3.snapshot(); return len(b) == 1 })
	waitFor(t, "every mailbox poked on node 2", func() bool { _, _, b, _ := n2.snapshot(); return len(b) == 3 })
	if _, _, b, _ := n2.snapshot(); b[1] != 7 || b[2] != 0 {
		t.Fatalf("node 2's mailbox pokes: %v, want [7 7 0]", b)
	}
	if _, _, b, _ := n3.snapshot(); b[0] != 0 {
		t.Fatalf("node 3's mailbox pokes: %v, want [0]", b)
	}

	n1.bus.Revoked(42)
	for _, n := range []*node{n2, n3} {
		waitFor(t, "the revocation", func() bool { _, _, _, c := n.snapshot(); return len(c) == 1 && c[0] == 42 })
	}
	if _, _, _, c := n1.snapshot(); len(c) != 0 {
		t.Fatalf("node 1 heard its own revocation: %v", c)
	}
}

// TestRestartResyncs: when the NATS server restarts, every subscriber of the node
// is made to refetch (a poke of every partition and mailbox), and the watches
// resume: an entry committed after the restart arrives whole.
func TestRestartResyncs(t *testing.T) {
	s := natstest.Start(t)
	n1 := startNode(t, s, natsbus.Config{NodeID: "1", PollInterval: time.Hour, ReconnectWait: 20 * time.Millisecond})
	n2 := startNode(t, s, natsbus.Config{NodeID: "2", PollInterval: time.Hour, ReconnectWait: 20 * time.Millisecond})
	masked := bytes.Repeat([]byte{3}, 32)
	watchConfirmed(t, n2, masked)
	resyncs := n2.bus.Stats().Resyncs
	s.Restart(t)
	waitFor(t, "node 2 resyncs", func() bool { return n2.bus.Stats().Resyncs > resyncs })
	waitFor(t, "node 2 pokes every partition", func() bool {
		_, p, _, _ := n2.snapshot()
		return len(p) > 0 && p[len(p)-1] == ""
	})
	waitFor(t, "node 1 reconnects", func() bool { return n1.bus.Health() == nil })
	waitFor(t, "an entry after the restart", func() bool {
		n1.bus.PartitionCommitted(hub.Entry{Masked: masked, Counter: 0, Message: []byte("after")})
		time.Sleep(20 * time.Millisecond)
		es, _, _, _ := n2.snapshot()
		return len(es) > 0
	})
}

// TestPollFindsTail: a partition that grew in the store with no notification (the
// committing node died before publishing) is poked by the poll, once; one that did
// not move is not.
func TestPollFindsTail(t *testing.T) {
	s := natstest.Start(t)
	n := startNode(t, s, natsbus.Config{NodeID: "1", PollInterval: 50 * time.Millisecond})
	moved, still := bytes.Repeat([]byte{4}, 32), bytes.Repeat([]byte{5}, 32)
	n.mu.Lock()
	n.lengths[string(moved)] = hub.PartitionInfo{Length: 3}
	n.lengths[string(still)] = hub.PartitionInfo{Length: 3}
	n.mu.Unlock()
	watchConfirmed(t, n, moved)
	watchConfirmed(t, n, still)
	waitFor(t, "two polls", func() bool { return n.bus.Stats().Polled >= 4 })
	pokes := n.bus.Stats().PollPokes
	n.mu.Lock()
	n.lengths[string(moved)] = hub.PartitionInfo{Length: 4}
	n.mu.Unlock()
	polled := n.bus.Stats().Polled
	waitFor(t, "two more polls", func() bool { return n.bus.Stats().Polled >= polled+4 })
	if got := n.bus.Stats().PollPokes - pokes; got != 1 {
		t.Fatalf("the poll poked %d partitions, want 1", got)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  natsbus.Config
		want string
	}{
		{"no url", natsbus.Config{}, "url is required"},
		{"wildcard subject", natsbus.Config{URL: "nats://127.0.0.1:4222", Subject: "mimids.>"}, "without wildcards"},
		{"trailing dot", natsbus.Config{URL: "nats://127.0.0.1:4222", Subject: "mimids."}, "without wildcards"},
		{"ok", natsbus.Config{URL: "nats://127.0.0.1:4222", Subject: "acme.mimids"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestStartsWithoutNATS: a node whose NATS server is down starts, reports it (Health),
// and connects when the server comes up, then resyncs its subscribers.
func TestStartsWithoutNATS(t *testing.T) {
	s := natstest.Start(t)
	s.Stop()
	b, err := natsbus.Connect(context.Background(), natsbus.Config{URL: s.URL(), ReconnectWait: 20 * time.Millisecond})
	if err != nil {
		t.Fatalf("connect while NATS is down: %v", err)
	}
	defer b.Close()
	if b.Health() == nil {
		t.Fatal("Health reports a connection to a server that is down")
	}
	s.Restart(t)
	waitFor(t, "the bus connects", func() bool { return b.Health() == nil })
}
