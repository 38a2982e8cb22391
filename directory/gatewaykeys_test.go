package directory_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/sqlite"
)

// The first Load makes a key; a rotation makes a new current one while the old
// keeps working for the grace period; a later Load sees the same keys.
func TestGatewayKeys(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "mimids.db"), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	gk := directory.NewGatewayKeys(db, time.Hour)
	ks, err := gk.Load(ctx, now)
	if err != nil || ks.Current() == nil || len(ks.States()) != 1 {
		t.Fatalf("first Load: %v", err)
	}
	first := ks.Current().ID()
	k, err := gk.Rotate(ctx, ks, now.Add(time.Minute))
	if err != nil || k.ID() == first || ks.Current().ID() != k.ID() {
		t.Fatalf("Rotate: %v", err)
	}
	again, err := directory.NewGatewayKeys(db, time.Hour).Load(ctx, now.Add(2*time.Minute))
	if err != nil || again.Current().ID() != k.ID() || len(again.States()) != 2 {
		t.Fatalf("reload: %v, %d keys", err, len(again.States()))
	}
	for _, st := range again.States() {
		if st.Key.ID() == first && st.Retired.IsZero() {
			t.Fatal("the first key is not retired after the rotation")
		}
	}
	// Past the grace period the next rotation drops the first key.
	if _, err := gk.Rotate(ctx, ks, now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	stored, err := db.GatewayKeys(ctx)
	if err != nil || len(stored) != 2 {
		t.Fatalf("stored after the grace period: %+v, %v", stored, err)
	}
	for _, s := range stored {
		if s.ID == first {
			t.Fatal("the first key outlived its grace period")
		}
	}
}
