package postgres

import (
	"context"
	"testing"
)

// The hub's record of a follower keeps its progress (the follower's copies are in
// followertest).
func TestPushSubs(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	masked := []byte("masked-key-0123456789")
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
}
