package fedtest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/federation"
)

// RunLeases is the conformance suite of federation.LeaseStore; open returns an
// empty store that lives until the test ends.
func RunLeases(t *testing.T, open func(t *testing.T) federation.LeaseStore) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s federation.LeaseStore)
	}{
		{"one owner until expiry", testLeaseExclusive},
		{"release hands over", testLeaseRelease},
		{"concurrent acquires", testLeaseConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

const ttl = 10 * time.Second

func acquire(t *testing.T, s federation.LeaseStore, node string, at time.Time) federation.Lease {
	t.Helper()
	ls, err := s.AcquireLease(ctx, "b.example", node, at, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func wantLease(t *testing.T, what string, got federation.Lease, owner string, expires time.Time, epoch uint64) {
	t.Helper()
	if got.Peer != "b.example" || got.Owner != owner || !got.Expires.Equal(expires) || got.Epoch != epoch {
		t.Fatalf("%s: %+v; want owner %s until %v, epoch %d", what, got, owner, expires, epoch)
	}
}

func testLeaseExclusive(t *testing.T, s federation.LeaseStore) {
	wantLease(t, "first acquire", acquire(t, s, "n1", t0), "n1", t0.Add(ttl), 1)
	wantLease(t, "another node while it lasts", acquire(t, s, "n2", t0.Add(ttl-time.Millisecond)), "n1", t0.Add(ttl), 1)
	wantLease(t, "renewal", acquire(t, s, "n1", t0.Add(5*time.Second)), "n1", t0.Add(5*time.Second+ttl), 1)
	wantLease(t, "another node once it expired", acquire(t, s, "n2", t0.Add(5*time.Second+ttl)), "n2", t0.Add(5*time.Second+2*ttl), 2)
	wantLease(t, "the old owner after takeover", acquire(t, s, "n1", t0.Add(6*time.Second+ttl)), "n2", t0.Add(5*time.Second+2*ttl), 2)
	if _, err := s.AcquireLease(ctx, "c.example", "n1", t0, ttl); err != nil {
		t.Fatal(err)
	}
	ls, err := s.Leases(ctx)
	if err != nil || len(ls) != 2 || ls[0].Peer != "b.example" || ls[0].Owner != "n2" || ls[1].Peer != "c.example" || ls[1].Owner != "n1" {
		t.Fatalf("leases: %+v, %v", ls, err)
	}
}

func testLeaseRelease(t *testing.T, s federation.LeaseStore) {
	acquire(t, s, "n1", t0)
	if err := s.ReleaseLease(ctx, "b.example", "n2"); err != nil { // not n2's: nothing happens
		t.Fatal(err)
	}
	wantLease(t, "after another node's release", acquire(t, s, "n2", t0.Add(time.Second)), "n1", t0.Add(ttl), 1)
	if err := s.ReleaseLease(ctx, "b.example", "n1"); err != nil {
		t.Fatal(err)
	}
	wantLease(t, "after the owner's release", acquire(t, s, "n2", t0.Add(time.Second)), "n2", t0.Add(time.Second+ttl), 2)
}

func testLeaseConcurrent(t *testing.T, s federation.LeaseStore) {
	const n = 8
	var wg sync.WaitGroup
	owners := make([]string, n)
	for i := range n {
		wg.Go(func() {
			ls, err := s.AcquireLease(ctx, "b.example", fmt.Sprintf("n%d", i), t0, ttl)
			if err != nil {
				t.Error(err)
				return
			}
			owners[i] = ls.Owner
		})
	}
	wg.Wait()
	for i, o := range owners {
		if o != owners[0] {
			t.Fatalf("node %d sees owner %s, node 0 sees %s", i, o, owners[0])
		}
	}
	ls, err := s.Leases(ctx)
	if err != nil || len(ls) != 1 || ls[0].Owner != owners[0] || ls[0].Epoch != 1 {
		t.Fatalf("leases after concurrent acquires: %+v, %v", ls, err)
	}
}
