package sqlite

import (
	"context"
	"slices"
	"testing"

	"github.com/mimids/mimids/follower"
)

// The follower's routes keep the first hub learned, also across a reopen, and list
// a client's hubs most recent first, bounded.
func TestFollowerRoutes(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	var r follower.Routes = db
	digest := follower.KeyDigest([]byte("0123456789abcdef"))
	for _, step := range []struct {
		name string
		set  func(hub string) error
		get  func() (string, bool, error)
	}{
		{"group", func(h string) error { return r.SetGroupHub(ctx, []byte("g1"), h) },
			func() (string, bool, error) { return r.GroupHub(ctx, []byte("g1")) }},
		{"partition", func(h string) error { return r.SetPartitionHub(ctx, digest, h) },
			func() (string, bool, error) { return r.PartitionHub(ctx, digest) }},
	} {
		if _, ok, err := step.get(); ok || err != nil {
			t.Fatalf("%s: known before it was learned (%v)", step.name, err)
		}
		if err := step.set("a.example"); err != nil {
			t.Fatal(err)
		}
		if err := step.set("evil.example"); err != nil {
			t.Fatal(err)
		}
		if hub, ok, err := step.get(); hub != "a.example" || !ok || err != nil {
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
