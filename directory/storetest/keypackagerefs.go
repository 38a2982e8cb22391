package storetest

import (
	"context"
	"testing"
	"time"
)

// testKnownRefs: KnownKeyPackageRefs answers, per ref, whether it is stored or was
// served (served ones stay known after the claim deleted them).
func testKnownRefs(t *testing.T, s KeyPackageBackend, at time.Time) {
	ctx := context.Background()
	m := &kpMaker{at: at}
	c := mustClient(t, s, "alice", "phone", at)
	stored := m.batch(c.ID, suite1, 2)
	mustAdd(t, s, c, stored, at)
	if got := claim(t, s, c.UserID, suite1, 0, at); got.Err != nil {
		t.Fatalf("claim: %v", got.Err)
	}
	fresh := m.kp(c.ID, suite1, false, at.Add(time.Hour))
	refs := [][]byte{fresh.Ref, stored[0].Ref, stored[1].Ref, fresh.Ref}
	known, err := s.KnownKeyPackageRefs(ctx, refs)
	if err != nil || len(known) != 4 || known[0] || !known[1] || !known[2] || known[3] {
		t.Fatalf("KnownKeyPackageRefs = %v, %v; want [false true true false]", known, err)
	}
	if known, err := s.KnownKeyPackageRefs(ctx, nil); err != nil || len(known) != 0 {
		t.Fatalf("no refs: %v, %v", known, err)
	}
}
