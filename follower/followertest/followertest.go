// Package followertest is the conformance suite of the follower's stores
// (follower.Routes and follower.CopyStore): every store backend runs it, so that
// routes keep the first hub learned and partition copies stay gapless on each.
package followertest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mimids/mimids/follower"
	"github.com/mimids/mimids/protocol"
)

// Store is what the suite needs of a backend.
type Store interface {
	follower.Routes
	follower.CopyStore
}

// Run runs the suite. open returns an empty store that lives until the test ends;
// reopen returns the same store opened again (the first stays open).
func Run(t *testing.T, open func(t *testing.T) (s Store, reopen func() Store)) {
	t.Run("routes", func(t *testing.T) { s, reopen := open(t); testRoutes(t, s, reopen) })
	t.Run("partition copies", func(t *testing.T) { s, reopen := open(t); testCopies(t, s, reopen) })
}

// testRoutes: the routes keep the first hub learned, also across a reopen, and
// list a client's hubs most recent first, bounded.
func testRoutes(t *testing.T, r Store, reopen func() Store) {
	ctx := context.Background()
	digest := follower.KeyDigest([]byte("0123456789abcdef"))
	for _, step := range []struct {
		name string
		set  func(r Store, hub string) error
		get  func(r Store) (string, bool, error)
	}{
		{"group", func(r Store, h string) error { return r.SetGroupHub(ctx, []byte("g1"), h) },
			func(r Store) (string, bool, error) { return r.GroupHub(ctx, []byte("g1")) }},
		{"partition", func(r Store, h string) error { return r.SetPartitionHub(ctx, digest, h) },
			func(r Store) (string, bool, error) { return r.PartitionHub(ctx, digest) }},
	} {
		if _, ok, err := step.get(r); ok || err != nil {
			t.Fatalf("%s: known before it was learned (%v)", step.name, err)
		}
		if err := step.set(r, "a.example"); err != nil {
			t.Fatal(err)
		}
		if err := step.set(r, "evil.example"); err != nil {
			t.Fatal(err)
		}
		if hub, ok, err := step.get(reopen()); hub != "a.example" || !ok || err != nil {
			t.Fatalf("%s: hub %q %v %v, want the first learned", step.name, hub, ok, err)
		}
	}
	for _, h := range []string{"a.example", "b.example", "c.example"} {
		if err := r.AddClientHub(ctx, 7, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.AddClientHub(ctx, 8, "d.example"); err != nil {
		t.Fatal(err)
	}
	hubs, err := r.ClientHubs(ctx, 7, 2)
	if err != nil || len(hubs) != 2 || slices.Contains(hubs, "d.example") {
		t.Fatalf("client hubs = %v, %v; want two of client 7's", hubs, err)
	}
	if hubs, _ := r.ClientHubs(ctx, 7, 10); len(hubs) != 3 {
		t.Fatalf("client hubs = %v, want 3", hubs)
	}
}

func pushEntries(from, n uint32) []protocol.PushEntry {
	var es []protocol.PushEntry
	for c := from; c < from+n; c++ {
		es = append(es, protocol.PushEntry{Counter: c, Message: fmt.Appendf(nil, "m%d", c)})
	}
	return es
}

// testCopies: a partition copy keeps the first hub and key digest, appends only
// from where it stands (duplicates skipped, a gap stops), ends at the terminated
// event, survives a reopen with its last use, and is deleted whole by RemoveCopy.
func testCopies(t *testing.T, db Store, reopen func() Store) {
	ctx := context.Background()
	masked, digest := []byte("masked-key-0123456789"), []byte("digest")
	at := time.UnixMilli(1_000_000)
	if r, err := db.FollowCopy(ctx, masked, digest, "a.example", at); err != nil || r.Hub != "a.example" || !r.UsedAt.Equal(at) {
		t.Fatalf("follow: %+v %v", r, err)
	}
	if r, err := db.FollowCopy(ctx, masked, []byte("other"), "evil.example", at); err != nil || r.Hub != "a.example" || string(r.Digest) != "digest" {
		t.Fatalf("follow again: %+v %v, want the first hub and digest", r, err)
	}
	for _, c := range []struct {
		name    string
		entries []protocol.PushEntry
		applied int
		next    uint32
		done    bool
	}{
		{"first", pushEntries(0, 3), 3, 3, false},
		{"duplicate", pushEntries(0, 3), 0, 3, false},
		{"overlap", pushEntries(2, 3), 2, 5, false},
		{"gap", pushEntries(7, 2), 0, 5, false},
		{"terminated", append(pushEntries(5, 1), protocol.PushEntry{Counter: 6, Terminated: true}), 2, 6, true},
		{"after the end", pushEntries(6, 1), 0, 6, true},
	} {
		var applied []protocol.PushEntry
		next, done, err := db.AppendCopy(ctx, masked, c.entries, func(a []protocol.PushEntry) { applied = a })
		if err != nil || next != c.next || done != c.done || len(applied) != c.applied {
			t.Fatalf("%s: next %d done %v applied %d, %v; want %d %v %d", c.name, next, done, len(applied), err, c.next, c.done, c.applied)
		}
	}
	db = reopen()
	used := time.UnixMilli(2_000_000)
	if err := db.TouchCopies(ctx, [][]byte{masked}, used); err != nil {
		t.Fatal(err)
	}
	recs, err := db.CopyRecords(ctx)
	if err != nil || len(recs) != 1 || recs[0].Hub != "a.example" || recs[0].Next != 6 || !recs[0].Done || !recs[0].UsedAt.Equal(used) {
		t.Fatalf("copy records after reopen: %+v %v", recs, err)
	}
	es, err := db.FetchCopy(ctx, masked, 1, 100)
	if err != nil || len(es) != 5 || es[0].Counter != 2 || !es[4].Terminated || string(es[3].Message) != "m5" {
		t.Fatalf("fetch copy: %+v %v", es, err)
	}
	if err := db.RemoveCopy(ctx, masked); err != nil {
		t.Fatal(err)
	}
	if recs, err := db.CopyRecords(ctx); err != nil || len(recs) != 0 {
		t.Fatalf("records after RemoveCopy: %+v %v", recs, err)
	}
	if es, err := db.FetchCopy(ctx, masked, -1, 100); err != nil || len(es) != 0 {
		t.Fatalf("entries after RemoveCopy: %d %v", len(es), err)
	}
}
