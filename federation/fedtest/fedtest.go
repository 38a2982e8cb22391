// Package fedtest is the conformance suite of federation.Store: every store backend
// runs it (sqlite's tests do), so that the link layer's guarantees (ids in commit
// order, answers applied once, joined transactions) hold on each.
package fedtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/protocol"
)

// Run runs the suite; open returns an empty store that lives until the test ends.
func Run(t *testing.T, open func(t *testing.T) federation.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s federation.Store)
	}{
		{"peers", testPeers},
		{"enqueue ids", testEnqueueIDs},
		{"pending window", testPending},
		{"acked", testAcked},
		{"acked joins", testAckedJoins},
		{"record once", testRecordOnce},
		{"record refusal undoes writes", testRecordRefusal},
		{"record failure commits nothing", testRecordFailure},
		{"record retention", testRetention},
		{"new stream", testResetInbox},
		{"remove peer", testRemovePeer},
		{"status", testStatus},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var ctx = context.Background()

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func peer(domain string, stream uint64) federation.Peer {
	return federation.Peer{Domain: domain, URL: "wss://" + domain + ":8443", Pin: bytes.Repeat([]byte{byte(stream)}, 32),
		Stream: stream, AddedAt: t0}
}

func addPeers(t *testing.T, s federation.Store, domains ...string) {
	t.Helper()
	for i, d := range domains {
		if err := s.PutPeer(ctx, peer(d, uint64(i+1))); err != nil {
			t.Fatal(err)
		}
	}
}

func testPeers(t *testing.T, s federation.Store) {
	if _, err := s.Peer(ctx, "b.example"); !errors.Is(err, federation.ErrUnknownPeer) {
		t.Fatalf("unknown peer: %v", err)
	}
	b := peer("b.example", 1<<63|7) // all 64 bits survive
	c := federation.Peer{Domain: "c.example", URL: "wss://c.example:1", CA: []byte("-----BEGIN CERTIFICATE-----"), Stream: 9, AddedAt: t0}
	for _, p := range []federation.Peer{c, b} {
		if err := s.PutPeer(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Peer(ctx, "b.example")
	if err != nil || got.Stream != b.Stream || !bytes.Equal(got.Pin, b.Pin) || got.CA != nil || got.URL != b.URL || !got.AddedAt.Equal(t0) {
		t.Fatalf("Peer = %+v, %v; want %+v", got, err, b)
	}
	// Replacing keeps the stream and takes the new URL and trust.
	b2 := federation.Peer{Domain: "b.example", URL: "wss://b2.example:9", CA: []byte("pem"), Stream: 5, AddedAt: t0.Add(time.Hour)}
	if err := s.PutPeer(ctx, b2); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Peer(ctx, "b.example")
	if got.Stream != b.Stream || got.URL != b2.URL || got.Pin != nil || string(got.CA) != "pem" {
		t.Fatalf("after replace: %+v", got)
	}
	all, err := s.Peers(ctx)
	if err != nil || len(all) != 2 || all[0].Domain != "b.example" || all[1].Domain != "c.example" {
		t.Fatalf("Peers = %+v, %v", all, err)
	}
}

func testEnqueueIDs(t *testing.T, s federation.Store) {
	addPeers(t, s, "b.example", "c.example")
	var committed []uint64
	for i := 1; i <= 3; i++ {
		for _, p := range []string{"b.example", "c.example"} {
			id, err := s.Enqueue(ctx, p, 0xf001, []byte(fmt.Sprint(p, i)), t0, func(id uint64) { committed = append(committed, id) })
			if err != nil || id != uint64(i) {
				t.Fatalf("Enqueue %s #%d = %d, %v", p, i, id, err)
			}
		}
	}
	if fmt.Sprint(committed) != "[1 1 2 2 3 3]" {
		t.Fatalf("committed callbacks %v", committed)
	}
	if _, err := s.Enqueue(ctx, "x.example", 1, nil, t0, nil); !errors.Is(err, federation.ErrUnknownPeer) {
		t.Fatalf("enqueue for an unknown peer: %v", err)
	}
	qs, err := s.Pending(ctx, "c.example", 0, 10, 1<<20)
	if err != nil || len(qs) != 3 || string(qs[2].Body) != "c.example3" || qs[2].Type != 0xf001 || !qs[0].EnqueuedAt.Equal(t0) {
		t.Fatalf("Pending = %+v, %v", qs, err)
	}
	// Ids are never reused, even once the queue is empty.
	if _, err := s.Acked(ctx, "b.example", []uint64{1, 2, 3}, nil); err != nil {
		t.Fatal(err)
	}
	if id, err := s.Enqueue(ctx, "b.example", 1, nil, t0, nil); err != nil || id != 4 {
		t.Fatalf("after acks: id %d, %v", id, err)
	}
}

func testPending(t *testing.T, s federation.Store) {
	addPeers(t, s, "b.example")
	for i := 0; i < 10; i++ {
		if _, err := s.Enqueue(ctx, "b.example", 1, make([]byte, 100), t0, nil); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		after           uint64
		limit, maxBytes int
		want            []uint64
	}{
		{0, 3, 1 << 20, []uint64{1, 2, 3}},
		{3, 100, 1 << 20, []uint64{4, 5, 6, 7, 8, 9, 10}},
		{0, 100, 250, []uint64{1, 2}},
		{5, 100, 1, []uint64{6}}, // at least one
		{10, 100, 1 << 20, nil},
	}
	for _, tc := range tests {
		qs, err := s.Pending(ctx, "b.example", tc.after, tc.limit, tc.maxBytes)
		var ids []uint64
		for _, q := range qs {
			ids = append(ids, q.ID)
		}
		if err != nil || fmt.Sprint(ids) != fmt.Sprint(tc.want) {
			t.Errorf("Pending(after %d, limit %d, bytes %d) = %v, %v; want %v", tc.after, tc.limit, tc.maxBytes, ids, err, tc.want)
		}
	}
	st, err := s.QueueStats(ctx)
	if err != nil || len(st) != 1 || st[0].Depth != 10 || st[0].Bytes != 1000 || !st[0].Oldest.Equal(t0) {
		t.Fatalf("QueueStats = %+v, %v", st, err)
	}
}

func testAcked(t *testing.T, s federation.Store) {
	addPeers(t, s, "b.example")
	for i := 0; i < 5; i++ {
		s.Enqueue(ctx, "b.example", 1, nil, t0.Add(time.Duration(i)*time.Second), nil)
	}
	removed, err := s.Acked(ctx, "b.example", []uint64{3, 1, 99}, nil)
	if err != nil || fmt.Sprint(removed) != "[1 3]" {
		t.Fatalf("Acked = %v, %v; want [1 3]", removed, err)
	}
	// Answered again (on another link): nothing is removed, fn sees no id.
	var again []uint64
	removed, err = s.Acked(ctx, "b.example", []uint64{1}, func(_ context.Context, r []uint64) error { again = r; return nil })
	if err != nil || len(removed) != 0 || len(again) != 0 {
		t.Fatalf("Acked again = %v (fn saw %v), %v", removed, again, err)
	}
	qs, _ := s.Pending(ctx, "b.example", 0, 10, 1<<20)
	if len(qs) != 3 || qs[0].ID != 2 || qs[1].ID != 4 {
		t.Fatalf("after acks: %+v", qs)
	}
	st, _ := s.QueueStats(ctx)
	if len(st) != 1 || st[0].Depth != 3 || !st[0].Oldest.Equal(t0.Add(time.Second)) {
		t.Fatalf("QueueStats = %+v", st)
	}
	// An error from fn undoes the removal.
	boom := errors.New("boom")
	if _, err := s.Acked(ctx, "b.example", []uint64{2}, func(context.Context, []uint64) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Acked with failing fn: %v", err)
	}
	if qs, _ := s.Pending(ctx, "b.example", 0, 10, 1<<20); len(qs) != 3 {
		t.Fatalf("the failed ack removed envelopes: %+v", qs)
	}
}

// testAckedJoins: an envelope enqueued with fn's context commits with the ack, its
// committed callback runs after that commit, and both roll back together.
func testAckedJoins(t *testing.T, s federation.Store) {
	addPeers(t, s, "b.example", "c.example")
	s.Enqueue(ctx, "b.example", 1, nil, t0, nil)
	s.Enqueue(ctx, "b.example", 1, nil, t0, nil)
	var calls []string
	_, err := s.Acked(ctx, "b.example", []uint64{1}, func(ctx context.Context, _ []uint64) error {
		_, err := s.Enqueue(ctx, "c.example", 2, []byte("joined"), t0, func(id uint64) { calls = append(calls, fmt.Sprint("committed ", id)) })
		calls = append(calls, "enqueued")
		return err
	})
	if err != nil || fmt.Sprint(calls) != "[enqueued committed 1]" {
		t.Fatalf("joined enqueue: %v, calls %v", err, calls)
	}
	calls = nil
	boom := errors.New("boom")
	_, err = s.Acked(ctx, "b.example", []uint64{2}, func(ctx context.Context, _ []uint64) error {
		s.Enqueue(ctx, "c.example", 2, []byte("undone"), t0, func(uint64) { calls = append(calls, "committed") })
		return boom
	})
	if !errors.Is(err, boom) || calls != nil {
		t.Fatalf("failed joined ack: %v, calls %v", err, calls)
	}
	qs, _ := s.Pending(ctx, "c.example", 0, 10, 1<<20)
	if len(qs) != 1 || string(qs[0].Body) != "joined" {
		t.Fatalf("c's queue %+v", qs)
	}
	if qs, _ := s.Pending(ctx, "b.example", 0, 10, 1<<20); len(qs) != 1 || qs[0].ID != 2 {
		t.Fatalf("b's queue %+v", qs)
	}
	// The id the undone envelope took is free again: ids stay in commit order.
	if id, _ := s.Enqueue(ctx, "c.example", 2, nil, t0, nil); id != 2 {
		t.Fatalf("next id %d, want 2", id)
	}
}

func testRecordOnce(t *testing.T, s federation.Store) {
	addPeers(t, s, "b.example", "c.example")
	if st, h, err := s.InboxState(ctx, "b.example"); err != nil || st != 0 || h != 0 {
		t.Fatalf("fresh inbox: %d %d %v", st, h, err)
	}
	if err := s.ResetInbox(ctx, "b.example", 42); err != nil {
		t.Fatal(err)
	}
	calls := 0
	apply := func(ctx context.Context) ([]byte, error) {
		calls++
		if _, err := s.Enqueue(ctx, "c.example", 1, []byte("effect"), t0, nil); err != nil {
			return nil, err
		}
		return []byte("answer"), nil
	}
	for i := 0; i < 3; i++ {
		rep, err := s.Record(ctx, "b.example", 7, apply)
		if err != nil || rep.Code != 0 || string(rep.Body) != "answer" {
			t.Fatalf("Record #%d = %+v, %v", i, rep, err)
		}
	}
	if calls != 1 {
		t.Fatalf("fn called %d times", calls)
	}
	if qs, _ := s.Pending(ctx, "c.example", 0, 10, 1<<20); len(qs) != 1 {
		t.Fatalf("the effect committed %d times", len(qs))
	}
	st, h, err := s.InboxState(ctx, "b.example")
	if err != nil || st != 42 || h != 7 {
		t.Fatalf("inbox state %d %d %v", st, h, err)
	}
	rep, ok, err := s.Reply(ctx, "b.example", 7)
	if err != nil || !ok || string(rep.Body) != "answer" {
		t.Fatalf("Reply = %+v %v %v", rep, ok, err)
	}
	if _, ok, _ := s.Reply(ctx, "b.example", 6); ok {
		t.Fatal("a reply for an id never recorded")
	}
	// A lower id after a higher one is recorded, and the highest stays.
	s.Record(ctx, "b.example", 3, func(context.Context) ([]byte, error) { return nil, nil })
	if _, h, _ := s.InboxState(ctx, "b.example"); h != 7 {
		t.Fatalf("highest %d after a lower id", h)
	}
	if _, err := s.Record(ctx, "x.example", 1, apply); !errors.Is(err, federation.ErrUnknownPeer) {
		t.Fatalf("record for an unknown peer: %v", err)
	}
}

func testRecordRefusal(t *testing.T, s federation.Store) {
	addPeers(t, s, "b.example", "c.example")
	refusal := protocol.NewError(protocol.CodePolicy, "refused")
	calls := 0
	fn := func(ctx context.Context) ([]byte, error) {
		calls++
		s.Enqueue(ctx, "c.example", 1, []byte("must not commit"), t0, nil)
		return []byte("ignored"), fmt.Errorf("test: %w", refusal)
	}
	for i := 0; i < 2; i++ {
		rep, err := s.Record(ctx, "b.example", 1, fn)
		if err != nil || rep.Code != protocol.CodePolicy || string(rep.Body) != "test: refused" {
			t.Fatalf("Record = %+v, %v", rep, err)
		}
	}
	if calls != 1 {
		t.Fatalf("fn called %d times", calls)
	}
	if qs, _ := s.Pending(ctx, "c.example", 0, 10, 1<<20); len(qs) != 0 {
		t.Fatalf("a refused envelope's writes committed: %+v", qs)
	}
	if _, h, _ := s.InboxState(ctx, "b.example"); h != 1 {
		t.Fatalf("highest %d", h)
	}
}

func testRecordFailure(t *testing.T, s federation.Store) {
	addPeers(t, s, "b.example", "c.example")
	boom := errors.New("disk on fire")
	_, err := s.Record(ctx, "b.example", 1, func(ctx context.Context) ([]byte, error) {
		s.Enqueue(ctx, "c.example", 1, nil, t0, nil)
		return nil, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Record = %v", err)
	}
	if _, ok, _ := s.Reply(ctx, "b.example", 1); ok {
		t.Fatal("a failed envelope was recorded")
	}
	if qs, _ := s.Pending(ctx, "c.example", 0, 10, 1<<20); len(qs) != 0 {
		t.Fatal("a failed envelope's writes committed")
	}
	if _, h, _ := s.InboxState(ctx, "b.example"); h != 0 {
		t.Fatalf("highest %d after a failure", h)
	}
	// It can be applied later.
	if rep, err := s.Record(ctx, "b.example", 1, func(context.Context) ([]byte, error) { return []byte("ok"), nil }); err != nil || string(rep.Body) != "ok" {
		t.Fatalf("retry: %+v %v", rep, err)
	}
}

func testRetention(t *testing.T, s federation.Store) {
	addPeers(t, s, "b.example")
	ok := func(context.Context) ([]byte, error) { return []byte("x"), nil }
	high := uint64(protocol.DedupRetention + 5)
	for _, id := range []uint64{1, 6, high} {
		if _, err := s.Record(ctx, "b.example", id, ok); err != nil {
			t.Fatal(err)
		}
	}
	if _, kept, _ := s.Reply(ctx, "b.example", 6); !kept {
		t.Fatalf("reply of id 6 dropped: within %d of %d", protocol.DedupRetention, high)
	}
	if _, kept, _ := s.Reply(ctx, "b.example", high); !kept {
		t.Fatal("the newest reply dropped")
	}
}

func testResetInbox(t *testing.T, s federation.Store) {
	addPeers(t, s, "b.example")
	s.ResetInbox(ctx, "b.example", 1)
	s.Record(ctx, "b.example", 5, func(context.Context) ([]byte, error) { return []byte("old"), nil })
	if err := s.ResetInbox(ctx, "b.example", 2); err != nil {
		t.Fatal(err)
	}
	st, h, _ := s.InboxState(ctx, "b.example")
	if _, ok, _ := s.Reply(ctx, "b.example", 5); st != 2 || h != 0 || ok {
		t.Fatalf("after a new stream: stream %d highest %d, old reply kept %v", st, h, ok)
	}
	if err := s.ResetInbox(ctx, "x.example", 2); !errors.Is(err, federation.ErrUnknownPeer) {
		t.Fatalf("reset for an unknown peer: %v", err)
	}
}

func testRemovePeer(t *testing.T, s federation.Store) {
	addPeers(t, s, "b.example")
	s.Enqueue(ctx, "b.example", 1, nil, t0, nil)
	s.Record(ctx, "b.example", 1, func(context.Context) ([]byte, error) { return nil, nil })
	s.SetPeerStatus(ctx, federation.PeerStatus{Domain: "b.example", State: federation.StateUp, Since: t0, UpdatedAt: t0})
	if ok, err := s.RemovePeer(ctx, "b.example"); !ok || err != nil {
		t.Fatalf("RemovePeer = %v, %v", ok, err)
	}
	if ok, err := s.RemovePeer(ctx, "b.example"); ok || err != nil {
		t.Fatalf("RemovePeer again = %v, %v", ok, err)
	}
	// Added again: nothing of the old entry is left.
	addPeers(t, s, "b.example")
	qs, _ := s.Pending(ctx, "b.example", 0, 10, 1<<20)
	_, found, _ := s.Reply(ctx, "b.example", 1)
	_, h, _ := s.InboxState(ctx, "b.example")
	st, _ := s.PeerStatuses(ctx)
	if len(qs) != 0 || found || h != 0 || len(st) != 0 {
		t.Fatalf("left after remove: queue %d, reply %v, highest %d, status %d", len(qs), found, h, len(st))
	}
	if id, _ := s.Enqueue(ctx, "b.example", 1, nil, t0, nil); id != 1 {
		t.Fatalf("first id after re-adding: %d", id)
	}
}

func testStatus(t *testing.T, s federation.Store) {
	addPeers(t, s, "b.example")
	want := federation.PeerStatus{Domain: "b.example", State: federation.StateAway, Since: t0, LastError: "dial: refused",
		LastErrorAt: t0.Add(time.Second), Attempts: 3, UpdatedAt: t0.Add(2 * time.Second)}
	if err := s.SetPeerStatus(ctx, want); err != nil {
		t.Fatal(err)
	}
	up := federation.PeerStatus{Domain: "b.example", State: federation.StateUp, Dialer: "a.example", Since: t0.Add(time.Minute), UpdatedAt: t0.Add(time.Minute)}
	if err := s.SetPeerStatus(ctx, up); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPeerStatus(ctx, federation.PeerStatus{Domain: "x.example", State: federation.StateUp}); err != nil {
		t.Fatalf("status of an unknown peer: %v", err)
	}
	got, err := s.PeerStatuses(ctx)
	if err != nil || len(got) != 1 {
		t.Fatalf("PeerStatuses = %+v, %v", got, err)
	}
	g := got[0]
	if g.State != up.State || g.Dialer != "a.example" || !g.Since.Equal(up.Since) || g.LastError != "" || !g.LastErrorAt.IsZero() || g.Attempts != 0 {
		t.Fatalf("status %+v, want %+v", g, up)
	}
}
