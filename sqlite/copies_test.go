package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mimids/mimids/protocol"
)

func pushEntries(from, n uint32) []protocol.PushEntry {
	var es []protocol.PushEntry
	for c := from; c < from+n; c++ {
		es = append(es, protocol.PushEntry{Counter: c, Message: []byte(fmt.Sprintf("m%d", c))})
	}
	return es
}

// A partition copy keeps the first hub, appends only from where it stands
// (duplicates skipped, a gap stops), ends at the terminated event, and survives a
// reopen; the hub's record of a follower keeps its progress.
func TestPartitionCopies(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mimids.db")
	db, err := Open(ctx, path, Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
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
	db.Close()
	if db, err = Open(ctx, path, Options{Synchronous: "normal"}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
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

	if s, err := db.AddPushSub(ctx, "b.example", masked, 4); err != nil || s.Next != 4 {
		t.Fatalf("add push sub: %+v %v", s, err)
	}
	if err := db.SetPushProgress(ctx, "b.example", masked, 9, false); err != nil {
		t.Fatal(err)
	}
	if s, err := db.AddPushSub(ctx, "b.example", masked, 0); err != nil || s.Next != 9 {
		t.Fatalf("subscribe again: %+v %v, want the recorded progress", s, err)
	}
	if err := db.SetPushProgress(ctx, "b.example", masked, 10, true); err != nil {
		t.Fatal(err)
	}
	if subs, err := db.PushSubs(ctx); err != nil || len(subs) != 0 {
		t.Fatalf("push subs: %+v %v, want none left (done)", subs, err)
	}
	for i, want := range []bool{true, false} {
		if ok, err := db.RemovePushSub(ctx, "b.example", masked); err != nil || ok != want {
			t.Fatalf("remove push sub %d: %v %v, want %v", i, ok, err, want)
		}
	}
	if s, err := db.AddPushSub(ctx, "b.example", masked, 3); err != nil || s.Next != 3 {
		t.Fatalf("subscribe after the removal: %+v %v, want a new one from 3", s, err)
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
