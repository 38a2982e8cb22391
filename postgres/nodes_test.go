package postgres

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/mls"
)

// The tests in this file open two stores ("nodes", each with its own pool) on one
// database and write through both at once, as the nodes of one provider do.

var testTime = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

func twoNodes(t *testing.T) [2]*DB {
	dsn := freshDSN(t)
	return [2]*DB{openDSN(t, dsn), openDSN(t, dsn)}
}

func digest(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func hostGroup(t *testing.T, db *DB, name string) []byte {
	t.Helper()
	masked := digest(name + "/0")
	g := hub.Group{GroupID: []byte(name), CipherSuite: 1, CreatorClient: 1, CreatorUser: "mimi://a.example/u/alice", CreatedAt: testTime}
	if _, err := db.CreateGroup(context.Background(), g, hub.Partition{Masked: masked, Epoch: 1, Verified: true}, nil); err != nil {
		t.Fatal(err)
	}
	return masked
}

func appendReq(masked []byte, id string) hub.AppendRequest {
	return hub.AppendRequest{Masked: masked, RequestHash: digest("req/" + id), ContentType: mls.ContentTypeApplication,
		Message: []byte("message " + id), SenderClient: 1, At: testTime}
}

// TestNodesSequenceGapless: eight senders on each of two nodes append to one
// partition at once, each request sent twice (once to each node, as a client's
// retry after a reconnect lands on the other). Every request is sequenced exactly
// once, the counters are 0..n-1 without gaps, the retries are answered with the
// first counter, and each node publishes its own appends in counter order.
func TestNodesSequenceGapless(t *testing.T) {
	ctx := context.Background()
	nodes := twoNodes(t)
	masked := hostGroup(t, nodes[0], "g")
	const senders, each = 8, 25
	var mu sync.Mutex
	counterOf := map[string]uint32{}
	published := [2][]uint32{}
	var wg sync.WaitGroup
	for s := range senders {
		for n := range nodes {
			wg.Go(func() {
				for i := range each {
					// Node n sends sender s's request i; the other node's sender s sends it too.
					id := fmt.Sprintf("%d/%d", s, i)
					res, err := nodes[n].Append(ctx, appendReq(masked, id), func(e hub.Entry) {
						mu.Lock()
						published[n] = append(published[n], e.Counter)
						mu.Unlock()
					})
					if err != nil {
						t.Errorf("node %d append %s: %v", n, id, err)
						return
					}
					mu.Lock()
					if c, ok := counterOf[id]; ok && c != res.Counter {
						t.Errorf("request %s sequenced at %d and %d", id, c, res.Counter)
					}
					counterOf[id] = res.Counter
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	const total = senders * each
	p, err := nodes[1].Partition(ctx, masked)
	if err != nil || p.Length != total || len(counterOf) != total {
		t.Fatalf("partition length %d (%v), %d distinct requests; want %d", p.Length, err, len(counterOf), total)
	}
	es, err := nodes[1].Entries(ctx, masked, -1, 2*total, 1<<30)
	if err != nil || len(es) != total {
		t.Fatalf("Entries = %d, %v; want %d", len(es), err, total)
	}
	for i, e := range es {
		if e.Counter != uint32(i) {
			t.Fatalf("entry %d has counter %d", i, e.Counter)
		}
	}
	all := append(slices.Clone(published[0]), published[1]...)
	slices.Sort(all)
	if len(all) != total || slices.Compact(all)[total-1] != total-1 {
		t.Fatalf("published %d entries (%d distinct), want each of %d once", len(published[0])+len(published[1]), len(slices.Compact(all)), total)
	}
	for n, got := range published {
		if !slices.IsSorted(got) {
			t.Fatalf("node %d published out of counter order: %v", n, got)
		}
	}
}

// TestNodesTerminateOrdersAppends: appends on one node and a termination on the
// other: every append is sequenced before the termination or refused after it,
// and the terminated event's counter is the partition's final length.
func TestNodesTerminateOrdersAppends(t *testing.T) {
	ctx := context.Background()
	nodes := twoNodes(t)
	masked := hostGroup(t, nodes[0], "g")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var sequenced []uint32
	wg.Go(func() {
		for i := range 200 {
			res, err := nodes[0].Append(ctx, appendReq(masked, fmt.Sprint(i)), nil)
			if err != nil {
				return // terminated
			}
			mu.Lock()
			sequenced = append(sequenced, res.Counter)
			mu.Unlock()
		}
	})
	var ended hub.Entry
	wg.Go(func() {
		// Let some appends in first (correctness does not depend on it).
		for range 1000 {
			if p, err := nodes[1].Partition(ctx, masked); err != nil || p.Length >= 10 {
				break
			}
		}
		if _, err := nodes[1].Terminate(ctx, masked, testTime, func(e hub.Entry) { ended = e }); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	p, err := nodes[0].Partition(ctx, masked)
	if err != nil || !p.Terminated || ended.Counter != p.Length || int(p.Length) != len(sequenced) {
		t.Fatalf("partition %+v (%v), terminated event at %d, %d sequenced", p, err, ended.Counter, len(sequenced))
	}
}

// TestNodesClaimKeyPackagesOnce: claims from two nodes at once serve each one-time
// KeyPackage once, and the last resort only once none is left.
func TestNodesClaimKeyPackagesOnce(t *testing.T) {
	ctx := context.Background()
	nodes := twoNodes(t)
	var users []directory.Client
	const kpsPerClient = 20
	n := 0
	for _, name := range []string{"phone", "laptop"} {
		c, err := nodes[0].CreateClient(ctx, "alice", name, []byte(name), true, testTime)
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, c)
		var kps []directory.StoredKeyPackage
		for i := range kpsPerClient + 1 {
			n++
			kps = append(kps, directory.StoredKeyPackage{Ref: digest(fmt.Sprint("kp", n)), ClientID: c.ID, Version: 1, CipherSuite: 1,
				NotAfter: testTime.Add(time.Hour), LastResort: i == kpsPerClient, Data: []byte("kp")})
		}
		if err := nodes[0].AddKeyPackages(ctx, c.ID, kps, 1000, 5, testTime); err != nil {
			t.Fatal(err)
		}
	}
	const claims = 60
	var mu sync.Mutex
	served := map[string]int{}
	lastResorts := 0
	var wg sync.WaitGroup
	for i := range claims {
		wg.Go(func() {
			cs, err := nodes[i%2].ClaimKeyPackages(ctx, []directory.ClaimRequest{{UserID: users[0].UserID, Version: 1, CipherSuite: 1}}, 5, testTime)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || cs[0].Err != nil {
				t.Errorf("claim: %v %+v", err, cs)
				return
			}
			served[string(cs[0].KeyPackage.Ref)]++
			if cs[0].KeyPackage.LastResort {
				lastResorts++
			}
		})
	}
	wg.Wait()
	oneTime := 0
	for _, k := range served {
		if k == 1 {
			oneTime++
		}
	}
	if oneTime != 2*kpsPerClient || lastResorts != claims-2*kpsPerClient {
		t.Fatalf("%d one-time KeyPackages served once (want %d), %d last resorts (want %d): %v",
			oneTime, 2*kpsPerClient, lastResorts, claims-2*kpsPerClient, served)
	}
}
