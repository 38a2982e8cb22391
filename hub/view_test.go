package hub_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/mimids/mimids/hub"
)

func TestView(t *testing.T) {
	g := loadFixture(t, "fork.json")
	e := newEnv(t, "a.example", nil)
	e.create(g)
	r := newReplayer(e, g)
	r.run(t, g.Steps, sendOpts{})
	var a []tsStep
	for _, br := range g.Branches {
		if br.Name == "a" {
			a = br.Steps
		}
	}
	r.run(t, a[:3], sendOpts{}) // removes carol, then sets the moderation list
	ctx := context.Background()
	v, err := e.h.View(ctx, mask(t, a[2].After.PartitionKey))
	if err != nil {
		t.Fatal(err)
	}
	if !v.Visible || len(v.Members) != 2 || !slices.Equal(v.Banned, []string{"mimi://a.example/u/carol"}) || !slices.Equal(v.Muted, []string{"mimi://b.example/u/bob"}) {
		t.Fatalf("view %+v", v)
	}
	if v, err := e.h.View(ctx, mask(t, g.Initial.PartitionKey)); err != nil || !v.Visible || len(v.Members) != 1 || v.Banned != nil {
		t.Fatalf("first partition: %+v %v", v, err)
	}
	if _, err := e.h.View(ctx, make([]byte, 32)); !errors.Is(err, hub.ErrUnknownPartition) {
		t.Fatalf("unknown partition: %v", err)
	}
}
