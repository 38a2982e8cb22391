package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// KeyPackageBackend is a store of users, clients, KeyPackages and discovery tokens.
type KeyPackageBackend interface {
	directory.Store
	directory.KeyPackageStore
}

const (
	suite1 = mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519
	suite2 = mls.MLS128DHKEMP256AES128GCMSHA256P256
	mls10  = mls.ProtocolVersionMLS10
)

// kpMaker makes synthetic stored KeyPackages: the store does not look inside them.
type kpMaker struct {
	n  int
	at time.Time
}

func (m *kpMaker) kp(clientID int64, suite mls.CipherSuite, lastResort bool, notAfter time.Time) directory.StoredKeyPackage {
	m.n++
	ref := sha256.Sum256(fmt.Appendf(nil, "kp %d", m.n))
	leaf := sha256.Sum256(fmt.Appendf(nil, "leaf key %d", m.n))
	return directory.StoredKeyPackage{Ref: ref[:], ClientID: clientID, Version: mls10, CipherSuite: suite,
		NotAfter: notAfter.Truncate(time.Second), LastResort: lastResort, Data: fmt.Appendf(nil, "key package %d", m.n),
		LeafKeyHash: leaf[:]}
}

func (m *kpMaker) batch(clientID int64, suite mls.CipherSuite, n int) []directory.StoredKeyPackage {
	out := make([]directory.StoredKeyPackage, n)
	for i := range out {
		out[i] = m.kp(clientID, suite, false, m.at.Add(30*24*time.Hour))
	}
	return out
}

func mustClient(t *testing.T, s directory.Store, user, client string, at time.Time) directory.Client {
	t.Helper()
	c, err := s.CreateClient(context.Background(), user, client, []byte(user+"/"+client), true, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustAdd(t *testing.T, s KeyPackageBackend, c directory.Client, kps []directory.StoredKeyPackage, at time.Time) {
	t.Helper()
	if err := s.AddKeyPackages(context.Background(), c.ID, kps, 1000, 5, at); err != nil {
		t.Fatalf("AddKeyPackages: %v", err)
	}
}

func claim(t *testing.T, s KeyPackageBackend, u int64, suite mls.CipherSuite, threshold int, at time.Time) directory.Claim {
	t.Helper()
	cs, err := s.ClaimKeyPackages(context.Background(), []directory.ClaimRequest{{UserID: u, Version: mls10, CipherSuite: suite}}, threshold, at)
	if err != nil || len(cs) != 1 {
		t.Fatalf("ClaimKeyPackages = %v, %v", cs, err)
	}
	return cs[0]
}

func uploadIndex(err error) (int, bool) {
	var ue *directory.UploadError
	if errors.As(err, &ue) {
		return ue.Index, true
	}
	return 0, false
}

// RunKeyPackages runs the KeyPackage and discovery-token suite; newStore returns an
// empty store that lives for the test.
func RunKeyPackages(t *testing.T, newStore func(t *testing.T) KeyPackageBackend) {
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	t.Run("upload and stock", func(t *testing.T) { testUploadStock(t, newStore(t), at) })
	t.Run("duplicates", func(t *testing.T) { testDuplicates(t, newStore(t), at) })
	t.Run("known refs", func(t *testing.T) { testKnownRefs(t, newStore(t), at) })
	t.Run("limit", func(t *testing.T) { testLimit(t, newStore(t), at) })
	t.Run("last resort", func(t *testing.T) { testLastResort(t, newStore(t), at) })
	t.Run("claim order", func(t *testing.T) { testClaimOrder(t, newStore(t), at) })
	t.Run("expired never served", func(t *testing.T) { testExpiredNotServed(t, newStore(t), at) })
	t.Run("low stock once per crossing", func(t *testing.T) { testLowStock(t, newStore(t), at) })
	t.Run("concurrent claims", func(t *testing.T) { testConcurrentClaims(t, newStore(t), at) })
	t.Run("purge", func(t *testing.T) { testPurge(t, newStore(t), at) })
	t.Run("distinct clients in one call", func(t *testing.T) { testDistinctClients(t, newStore(t), at) })
	t.Run("exhausted once per crossing", func(t *testing.T) { testExhausted(t, newStore(t), at) })
	t.Run("discovery secrets", func(t *testing.T) { testSecrets(t, newStore(t), at) })
	t.Run("revocation list", func(t *testing.T) { testRevocations(t, newStore(t), at) })
	t.Run("shared token", func(t *testing.T) { testSharedToken(t, newStore(t), at) })
	t.Run("user deletion cascades", func(t *testing.T) { testCascade(t, newStore(t), at) })
}

func testUploadStock(t *testing.T, s KeyPackageBackend, at time.Time) {
	ctx := context.Background()
	m := &kpMaker{at: at}
	c := mustClient(t, s, "alice", "phone", at)
	kps := append(m.batch(c.ID, suite1, 3), m.kp(c.ID, suite1, true, at.Add(time.Hour)), m.kp(c.ID, suite2, false, at.Add(time.Hour)))
	mustAdd(t, s, c, kps, at)
	if err := s.AddKeyPackages(ctx, 99999, m.batch(99999, suite1, 1), 1000, 5, at); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("upload for a missing client: %v", err)
	}
	got, err := s.KeyPackageStock(ctx, c.ID, at)
	want := []protocol.KeyPackageStock{{CipherSuite: suite1, Available: 3, LastResort: true}, {CipherSuite: suite2, Available: 1}}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("KeyPackageStock = %+v, %v; want %+v", got, err, want)
	}
	// Two hours later the last resort and the suite-2 KeyPackage have expired.
	got, _ = s.KeyPackageStock(ctx, c.ID, at.Add(2*time.Hour))
	want = []protocol.KeyPackageStock{{CipherSuite: suite1, Available: 3}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("KeyPackageStock later = %+v; want %+v", got, want)
	}
	if got, _ := s.KeyPackageStock(ctx, c.ID+1, at); len(got) != 0 {
		t.Fatalf("stock of another client = %+v", got)
	}
	s.RevokeClient(ctx, "alice", "phone", at)
	if err := s.AddKeyPackages(ctx, c.ID, m.batch(c.ID, suite1, 1), 1000, 5, at); !errors.Is(err, directory.ErrBadToken) {
		t.Fatalf("upload by a revoked client: %v", err)
	}
}

func testDuplicates(t *testing.T, s KeyPackageBackend, at time.Time) {
	ctx := context.Background()
	m := &kpMaker{at: at}
	c := mustClient(t, s, "alice", "phone", at)
	first := m.batch(c.ID, suite1, 2)
	mustAdd(t, s, c, first, at)
	fresh := m.batch(c.ID, suite1, 1)[0]
	err := s.AddKeyPackages(ctx, c.ID, []directory.StoredKeyPackage{fresh, first[1]}, 1000, 5, at)
	if i, ok := uploadIndex(err); !ok || i != 1 || !errors.Is(err, directory.ErrDuplicateKeyPackage) {
		t.Fatalf("re-upload = %v, want UploadError{1, ErrDuplicateKeyPackage}", err)
	}
	if st, _ := s.KeyPackageStock(ctx, c.ID, at); st[0].Available != 2 {
		t.Fatalf("a refused upload stored something: %+v", st)
	}
	// A KeyPackage that was served (and so deleted) cannot come back.
	u, _ := s.User(ctx, "alice")
	cl := claim(t, s, u.ID, suite1, 1, at)
	if cl.Err != nil {
		t.Fatal(cl.Err)
	}
	served := first[0]
	if !bytes.Equal(cl.KeyPackage.Ref, first[0].Ref) {
		served = first[1]
	}
	err = s.AddKeyPackages(ctx, c.ID, []directory.StoredKeyPackage{served}, 1000, 5, at)
	if i, ok := uploadIndex(err); !ok || i != 0 || !errors.Is(err, directory.ErrDuplicateKeyPackage) {
		t.Fatalf("re-upload of a served KeyPackage = %v", err)
	}
	// Another client of another user cannot upload the same ref either.
	d := mustClient(t, s, "bob", "phone", at)
	other := first[1]
	other.ClientID = d.ID
	if err := s.AddKeyPackages(ctx, d.ID, []directory.StoredKeyPackage{other}, 1000, 5, at); !errors.Is(err, directory.ErrDuplicateKeyPackage) {
		t.Fatalf("same ref for another client: %v", err)
	}
}

func testLimit(t *testing.T, s KeyPackageBackend, at time.Time) {
	ctx := context.Background()
	m := &kpMaker{at: at}
	c := mustClient(t, s, "alice", "phone", at)
	if err := s.AddKeyPackages(ctx, c.ID, m.batch(c.ID, suite1, 4), 5, 1, at); err != nil {
		t.Fatal(err)
	}
	err := s.AddKeyPackages(ctx, c.ID, m.batch(c.ID, suite2, 2), 5, 1, at)
	if !errors.Is(err, directory.ErrKeyPackageLimit) {
		t.Fatalf("over the limit: %v, want ErrKeyPackageLimit", err)
	}
	if st, _ := s.KeyPackageStock(ctx, c.ID, at); len(st) != 1 || st[0].Available != 4 {
		t.Fatalf("refused upload left %+v", st)
	}
	// Expired KeyPackages do not count against the limit: a day after 4 expire, 5 fit.
	short := make([]directory.StoredKeyPackage, 0, 1)
	short = append(short, m.kp(c.ID, suite1, false, at.Add(time.Hour)))
	if err := s.AddKeyPackages(ctx, c.ID, short, 5, 1, at); err != nil {
		t.Fatal(err)
	}
	later := at.Add(24 * time.Hour)
	if err := s.AddKeyPackages(ctx, c.ID, m.batch(c.ID, suite2, 1), 5, 1, later); err != nil {
		t.Fatalf("upload after the expiry freed room: %v", err)
	}
}

func testLastResort(t *testing.T, s KeyPackageBackend, at time.Time) {
	ctx := context.Background()
	m := &kpMaker{at: at}
	u := mustClient(t, s, "alice", "phone", at)
	v := mustClient(t, s, "alice", "laptop", at)
	far := at.Add(365 * 24 * time.Hour)
	old, lr := m.kp(u.ID, suite1, true, far), m.kp(u.ID, suite1, true, far)
	mustAdd(t, s, u, []directory.StoredKeyPackage{old, m.kp(u.ID, suite2, true, far)}, at)
	mustAdd(t, s, u, []directory.StoredKeyPackage{lr}, at) // replaces old, keeps suite 2's
	st, _ := s.KeyPackageStock(ctx, u.ID, at)
	if len(st) != 2 || !st[0].LastResort || !st[1].LastResort || st[0].Available != 0 {
		t.Fatalf("stock = %+v", st)
	}
	for i := 0; i < 3; i++ {
		c := claim(t, s, u.UserID, suite1, 5, at)
		if c.Err != nil || !bytes.Equal(c.KeyPackage.Ref, lr.Ref) || !c.KeyPackage.LastResort || c.KeyPackage.ClientID != u.ID ||
			!bytes.Equal(c.KeyPackage.Data, lr.Data) || c.Remaining != 0 {
			t.Fatalf("claim %d = %+v, want the new last resort", i, c)
		}
	}
	if got, err := s.ServedKeyPackage(ctx, lr.Ref); err != nil || got.Client.ID != u.ID || !bytes.Equal(got.LeafKeyHash, lr.LeafKeyHash) {
		t.Fatalf("ServedKeyPackage(last resort) = %+v, %v", got, err)
	}
	if _, err := s.ServedKeyPackage(ctx, old.Ref); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("ServedKeyPackage(replaced, never served) = %v", err)
	}
	// With a second client's last resort, the least served goes first.
	lr2 := m.kp(v.ID, suite1, true, far)
	mustAdd(t, s, v, []directory.StoredKeyPackage{lr2}, at)
	if c := claim(t, s, u.UserID, suite1, 5, at); !bytes.Equal(c.KeyPackage.Ref, lr2.Ref) {
		t.Fatalf("claim served %x, want the laptop's unserved last resort", c.KeyPackage.Ref)
	}
	// A regular KeyPackage goes before any last resort.
	reg := m.kp(v.ID, suite1, false, far)
	mustAdd(t, s, v, []directory.StoredKeyPackage{reg}, at)
	if c := claim(t, s, u.UserID, suite1, 5, at); !bytes.Equal(c.KeyPackage.Ref, reg.Ref) || c.KeyPackage.LastResort {
		t.Fatalf("claim = %+v, want the regular KeyPackage", c)
	}
	if c := claim(t, s, u.UserID, mls.MLS256DHKEMP384AES256GCMSHA384P384, 5, at); !errors.Is(c.Err, directory.ErrNoKeyPackage) {
		t.Fatalf("claim for a suite nobody has = %+v", c)
	}
}

func testClaimOrder(t *testing.T, s KeyPackageBackend, at time.Time) {
	ctx := context.Background()
	m := &kpMaker{at: at}
	a := mustClient(t, s, "alice", "a", at)
	b := mustClient(t, s, "alice", "b", at)
	r := mustClient(t, s, "alice", "revoked", at)
	// a: three, the second expiring soonest; b: one; revoked: two; plus an expired one
	// and other suites and versions that must not be served.
	aKPs := []directory.StoredKeyPackage{m.kp(a.ID, suite1, false, at.Add(72*time.Hour)),
		m.kp(a.ID, suite1, false, at.Add(24*time.Hour)), m.kp(a.ID, suite1, false, at.Add(48*time.Hour))}
	mustAdd(t, s, a, aKPs, at)
	bKP := m.kp(b.ID, suite1, false, at.Add(24*time.Hour))
	mustAdd(t, s, b, []directory.StoredKeyPackage{bKP, m.kp(b.ID, suite1, false, at.Add(time.Minute)), m.kp(b.ID, suite2, false, at.Add(time.Hour))}, at)
	v2 := m.kp(b.ID, suite1, false, at.Add(time.Hour))
	v2.Version = 2
	mustAdd(t, s, b, []directory.StoredKeyPackage{v2}, at)
	mustAdd(t, s, r, m.batch(r.ID, suite1, 2), at)
	s.RevokeClient(ctx, "alice", "revoked", at)
	now := at.Add(time.Hour) // b's one-minute KeyPackage has expired
	want := []directory.StoredKeyPackage{aKPs[1], aKPs[2], aKPs[0], bKP}
	// Stock (a, b): (3,1) -> a; (2,1) -> a; (1,1) -> the lower client ID, a; (0,1) -> b.
	remaining := []int{2, 1, 0, 0}
	for i, w := range want {
		c := claim(t, s, a.UserID, suite1, 1, now)
		if c.Err != nil || !bytes.Equal(c.KeyPackage.Ref, w.Ref) || c.KeyPackage.ClientID != w.ClientID || c.Remaining != remaining[i] ||
			!bytes.Equal(c.KeyPackage.Data, w.Data) || !c.KeyPackage.NotAfter.Equal(w.NotAfter) || c.KeyPackage.LastResort {
			t.Fatalf("claim %d = %+v, %v; want ref %x of client %d, remaining %d", i, c.KeyPackage, c.Err, w.Ref, w.ClientID, remaining[i])
		}
		if got, err := s.ServedKeyPackage(ctx, w.Ref); err != nil || got.Client.ID != w.ClientID || got.Client.UserName != "alice" ||
			!bytes.Equal(got.LeafKeyHash, w.LeafKeyHash) {
			t.Fatalf("ServedKeyPackage = %+v, %v; want client %d and leaf key hash %x", got, err, w.ClientID, w.LeafKeyHash)
		}
	}
	if c := claim(t, s, a.UserID, suite1, 1, now); !errors.Is(c.Err, directory.ErrNoKeyPackage) {
		t.Fatalf("claim after the stock ran out = %+v", c)
	}
	cs, err := s.ClaimKeyPackages(ctx, []directory.ClaimRequest{{UserID: a.UserID, Version: 2, CipherSuite: suite1},
		{UserID: a.UserID, Version: mls10, CipherSuite: suite2}, {UserID: 424242, Version: mls10, CipherSuite: suite1}}, 1, now)
	if err != nil || len(cs) != 3 || !bytes.Equal(cs[0].KeyPackage.Ref, v2.Ref) || cs[1].Err != nil || !errors.Is(cs[2].Err, directory.ErrNoKeyPackage) {
		t.Fatalf("bundle claim = %+v, %v", cs, err)
	}
	if _, err := s.ServedKeyPackage(ctx, []byte("no such ref")); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("ServedKeyPackage(unknown) = %v", err)
	}
}

func testLowStock(t *testing.T, s KeyPackageBackend, at time.Time) {
	ctx := context.Background()
	m := &kpMaker{at: at}
	c := mustClient(t, s, "alice", "phone", at)
	add := func(n int) {
		t.Helper()
		if err := s.AddKeyPackages(ctx, c.ID, m.batch(c.ID, suite1, n), 1000, 3, at); err != nil {
			t.Fatal(err)
		}
	}
	lows := func(n int) []bool {
		t.Helper()
		out := make([]bool, n)
		for i := range out {
			cl := claim(t, s, c.UserID, suite1, 3, at)
			if cl.Err != nil {
				t.Fatal(cl.Err)
			}
			out[i] = cl.Low
		}
		return out
	}
	mustAdd(t, s, c, []directory.StoredKeyPackage{m.kp(c.ID, suite1, true, at.Add(time.Hour))}, at)
	add(5)
	// 5 -> 4 -> 3 -> 2 (crossing) -> 1 -> 0 -> last resort.
	if got := fmt.Sprint(lows(6)); got != "[false false true false false false]" {
		t.Fatalf("low flags = %s", got)
	}
	add(2) // 2 < 3: still low, no new notice
	if got := fmt.Sprint(lows(1)); got != "[false]" {
		t.Fatalf("after a small upload: %s", got)
	}
	add(5) // 6 >= 3: the mark is cleared
	if got := fmt.Sprint(lows(4)); got != "[false false false true]" {
		t.Fatalf("after refilling: %s", got)
	}
	if err := s.ClearLowStock(ctx, c.ID, suite1); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(lows(1)); got != "[true]" {
		t.Fatalf("after ClearLowStock: %s", got)
	}
	// A client that never had more than a last resort is told once.
	d := mustClient(t, s, "bob", "phone", at)
	mustAdd(t, s, d, []directory.StoredKeyPackage{m.kp(d.ID, suite1, true, at.Add(time.Hour))}, at)
	first, second := claim(t, s, d.UserID, suite1, 3, at), claim(t, s, d.UserID, suite1, 3, at)
	if !first.Low || second.Low || !first.KeyPackage.LastResort {
		t.Fatalf("last-resort-only client: first %+v second %+v", first, second)
	}
}

func testConcurrentClaims(t *testing.T, s KeyPackageBackend, at time.Time) {
	ctx := context.Background()
	m := &kpMaker{at: at}
	c := mustClient(t, s, "alice", "phone", at)
	lr := m.kp(c.ID, suite1, true, at.Add(time.Hour))
	mustAdd(t, s, c, append(m.batch(c.ID, suite1, 10), lr), at)
	var wg sync.WaitGroup
	var mu sync.Mutex
	served := map[string]int{}
	var lows int
	for range 50 {
		wg.Go(func() {
			cs, err := s.ClaimKeyPackages(ctx, []directory.ClaimRequest{{UserID: c.UserID, Version: mls10, CipherSuite: suite1}}, 5, at)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || cs[0].Err != nil {
				t.Errorf("claim: %v %v", err, cs)
				return
			}
			served[string(cs[0].KeyPackage.Ref)]++
			if cs[0].Low {
				lows++
			}
		})
	}
	wg.Wait()
	if len(served) != 11 || served[string(lr.Ref)] != 40 || lows != 1 {
		t.Fatalf("served %d distinct, last resort %d times, %d low notices; want 11, 40, 1", len(served), served[string(lr.Ref)], lows)
	}
	for ref, n := range served {
		if ref != string(lr.Ref) && n != 1 {
			t.Fatalf("KeyPackage %x served %d times", ref, n)
		}
	}
}

func testPurge(t *testing.T, s KeyPackageBackend, at time.Time) {
	ctx := context.Background()
	m := &kpMaker{at: at}
	c := mustClient(t, s, "alice", "phone", at)
	r := mustClient(t, s, "alice", "old", at)
	short := m.kp(c.ID, suite1, false, at.Add(time.Hour))
	keep := m.kp(c.ID, suite1, false, at.Add(48*time.Hour))
	mustAdd(t, s, c, []directory.StoredKeyPackage{short, keep, m.kp(c.ID, suite1, false, at.Add(2*time.Hour))}, at)
	mustAdd(t, s, r, m.batch(r.ID, suite1, 2), at)
	s.RevokeClient(ctx, "alice", "old", at)
	served := claim(t, s, c.UserID, suite1, 1, at) // serves short, the soonest expiring
	if !bytes.Equal(served.KeyPackage.Ref, short.Ref) {
		t.Fatalf("served %x, want the soonest expiring", served.KeyPackage.Ref)
	}
	if _, err := s.RevokeDiscoveryToken(ctx, 11, at.Add(time.Hour), at); err != nil {
		t.Fatal(err)
	}
	s.RevokeDiscoveryToken(ctx, 12, at.Add(72*time.Hour), at)
	s.RevokeDiscoveryToken(ctx, 13, time.Time{}, at)
	st, err := s.PurgeKeyPackages(ctx, at.Add(3*time.Hour))
	want := directory.PurgeStats{KeyPackages: 3, Served: 1, Tokens: 1} // 1 expired + 2 of the revoked client
	if err != nil || st != want {
		t.Fatalf("PurgeKeyPackages = %+v, %v; want %+v", st, err, want)
	}
	if stock, _ := s.KeyPackageStock(ctx, c.ID, at); len(stock) != 1 || stock[0].Available != 1 {
		t.Fatalf("after purge: %+v", stock)
	}
	if _, err := s.ServedKeyPackage(ctx, short.Ref); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("served record of an expired KeyPackage survived: %v", err)
	}
	revs, err := s.DiscoveryRevocations(ctx, at)
	if err != nil || len(revs.Tokens) != 2 || revs.Tokens[0].TokenID != 12 || revs.Tokens[1].TokenID != 13 {
		t.Fatalf("revocation list after purge: %+v, %v; want 12 and 13 (kept)", revs, err)
	}
	if st, err := s.PurgeKeyPackages(ctx, at.Add(3*time.Hour)); err != nil || st != (directory.PurgeStats{}) {
		t.Fatalf("second purge = %+v, %v", st, err)
	}
}

func testCascade(t *testing.T, s KeyPackageBackend, at time.Time) {
	ctx := context.Background()
	m := &kpMaker{at: at}
	c := mustClient(t, s, "alice", "phone", at)
	mustAdd(t, s, c, m.batch(c.ID, suite1, 2), at)
	cl := claim(t, s, c.UserID, suite1, 1, at)
	if _, err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ServedKeyPackage(ctx, cl.KeyPackage.Ref); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("served record of a deleted user: %v", err)
	}
	if st, _ := s.KeyPackageStock(ctx, c.ID, at); len(st) != 0 {
		t.Fatalf("KeyPackages of a deleted user: %+v", st)
	}
}

func testSecrets(t *testing.T, s KeyPackageBackend, at time.Time) {
	ctx := context.Background()
	if l, err := s.DiscoverySecrets(ctx, nil, at); err != nil || len(l) != 0 {
		t.Fatalf("DiscoverySecrets(nil) on an empty store = %+v, %v", l, err)
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			if _, err := s.DiscoverySecrets(ctx, fmt.Appendf(nil, "secret %d", i), at); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	first, err := s.DiscoverySecrets(ctx, []byte("later"), at.Add(time.Hour))
	if err != nil || len(first) != 1 || first[0].Retired() || !first[0].CreatedAt.Equal(at) || len(first[0].Secret) == 0 {
		t.Fatalf("secrets after concurrent first uses = %+v, %v; want one", first, err)
	}
	second, err := s.AddDiscoverySecret(ctx, []byte("second"), false, at.Add(time.Hour))
	if err != nil || second.ID <= first[0].ID {
		t.Fatalf("AddDiscoverySecret = %+v, %v", second, err)
	}
	shared, err := s.SharedDiscoveryToken(ctx, directory.DiscoveryToken{ID: 5, SecretID: first[0].ID, IssuedAt: at}, at)
	if err != nil || shared.SecretID != first[0].ID {
		t.Fatalf("SharedDiscoveryToken = %+v, %v", shared, err)
	}
	l, _ := s.DiscoverySecrets(ctx, nil, at)
	if len(l) != 2 || l[0].ID != second.ID || l[0].Retired() || l[1].Retired() || string(l[0].Secret) != "second" {
		t.Fatalf("secrets = %+v", l)
	}
	// Retiring the others ends the shared token they signed.
	third, _ := s.AddDiscoverySecret(ctx, []byte("third"), true, at.Add(2*time.Hour))
	l, _ = s.DiscoverySecrets(ctx, nil, at)
	if len(l) != 3 || l[0].ID != third.ID || l[0].Retired() || !l[1].Retired() || !l[2].RetiredAt.Equal(at.Add(2*time.Hour)) {
		t.Fatalf("secrets after retiring = %+v", l)
	}
	if _, err := s.SharedDiscoveryToken(ctx, directory.DiscoveryToken{}, at); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("shared token signed by a retired secret: %v", err)
	}
}

func testRevocations(t *testing.T, s KeyPackageBackend, at time.Time) {
	ctx := context.Background()
	c := mustClient(t, s, "alice", "phone", at)
	if r, err := s.DiscoveryRevocations(ctx, at); err != nil || len(r.Tokens)+len(r.Cutoffs) != 0 {
		t.Fatalf("empty revocation list = %+v, %v", r, err)
	}
	r1, err := s.RevokeDiscoveryToken(ctx, 77, at.Add(time.Hour), at)
	if err != nil || r1.TokenID != 77 || !r1.RevokedAt.Equal(at) || !r1.Until.Equal(at.Add(time.Hour)) {
		t.Fatalf("RevokeDiscoveryToken = %+v, %v", r1, err)
	}
	// Again: the first time stays, the later until wins.
	if again, _ := s.RevokeDiscoveryToken(ctx, 77, at.Add(2*time.Hour), at.Add(time.Minute)); !again.RevokedAt.Equal(at) ||
		!again.Until.Equal(at.Add(2*time.Hour)) {
		t.Fatalf("second revoke = %+v", again)
	}
	cut, err := s.RevokeDiscoveryTokensBefore(ctx, c.UserID, at.Add(time.Minute))
	if err != nil || cut.UserID != c.UserID || cut.UserName != "alice" || !cut.Before.Equal(at.Add(time.Minute)) {
		t.Fatalf("RevokeDiscoveryTokensBefore = %+v, %v", cut, err)
	}
	if earlier, _ := s.RevokeDiscoveryTokensBefore(ctx, c.UserID, at); !earlier.Before.Equal(at.Add(time.Minute)) {
		t.Fatalf("an earlier cutoff moved it back: %+v", earlier)
	}
	s.RevokeDiscoveryTokensBefore(ctx, 0, at.Add(time.Second))
	r, err := s.DiscoveryRevocations(ctx, at.Add(90*time.Minute))
	want := directory.Revocations{Tokens: []directory.TokenRevocation{{TokenID: 77, RevokedAt: at, Until: at.Add(2 * time.Hour)}},
		Cutoffs: []directory.TokenCutoff{{UserID: 0, Before: at.Add(time.Second)}, {UserID: c.UserID, UserName: "alice", Before: at.Add(time.Minute)}}}
	if err != nil || fmt.Sprint(r) != fmt.Sprint(want) {
		t.Fatalf("DiscoveryRevocations = %+v, %v; want %+v", r, err, want)
	}
	if r, _ := s.DiscoveryRevocations(ctx, at.Add(2*time.Hour)); len(r.Tokens) != 0 {
		t.Fatalf("an entry past its until is listed: %+v", r)
	}
}

func testSharedToken(t *testing.T, s KeyPackageBackend, at time.Time) {
	ctx := context.Background()
	sec, err := s.DiscoverySecrets(ctx, []byte("secret"), at)
	if err != nil {
		t.Fatal(err)
	}
	cand := func(id int64, expires time.Time) directory.DiscoveryToken {
		return directory.DiscoveryToken{ID: id, SecretID: sec[0].ID, Policy: directory.TokenShared, IssuedAt: at, ExpiresAt: expires}
	}
	if _, err := s.SharedDiscoveryToken(ctx, directory.DiscoveryToken{}, at); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("no shared token yet: %v", err)
	}
	var wg sync.WaitGroup
	got := make([]int64, 20)
	for i := range got {
		wg.Go(func() {
			tok, err := s.SharedDiscoveryToken(ctx, cand(int64(100+i), time.Time{}), at)
			if err != nil {
				t.Error(err)
			}
			got[i] = tok.ID
		})
	}
	wg.Wait()
	for _, id := range got {
		if id != got[0] || id == 0 {
			t.Fatalf("concurrent first uses made different shared tokens: %v", got)
		}
	}
	tok, err := s.SharedDiscoveryToken(ctx, cand(999, time.Time{}), at.Add(time.Hour))
	if err != nil || tok.ID != got[0] || tok.Policy != directory.TokenShared || tok.UserID != 0 || !tok.ExpiresAt.IsZero() ||
		!tok.IssuedAt.Equal(at) || tok.SecretID != sec[0].ID {
		t.Fatalf("SharedDiscoveryToken again = %+v, %v", tok, err)
	}
	// Revoked: the entry is kept for good (the token never expires) and the next call
	// makes a new one.
	if r, err := s.RevokeDiscoveryToken(ctx, tok.ID, at.Add(time.Hour), at.Add(time.Hour)); err != nil || !r.Until.IsZero() {
		t.Fatalf("revoking the shared token = %+v, %v; want it listed for good", r, err)
	}
	tok2, err := s.SharedDiscoveryToken(ctx, cand(200, at.Add(3*time.Hour)), at.Add(2*time.Hour))
	if err != nil || tok2.ID != 200 || !tok2.ExpiresAt.Equal(at.Add(3*time.Hour)) {
		t.Fatalf("shared token after revocation = %+v, %v", tok2, err)
	}
	// Expired: likewise.
	if tok3, err := s.SharedDiscoveryToken(ctx, cand(300, time.Time{}), at.Add(3*time.Hour)); err != nil || tok3.ID != 300 {
		t.Fatalf("shared token after expiry = %+v, %v", tok3, err)
	}
	// A cutoff for every user ends it too.
	s.RevokeDiscoveryTokensBefore(ctx, 0, at.Add(4*time.Hour))
	if _, err := s.SharedDiscoveryToken(ctx, directory.DiscoveryToken{}, at.Add(4*time.Hour)); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("shared token after a cutoff: %v", err)
	}
}

// testDistinctClients: requests of one call for one user, version and suite are served
// by distinct clients, last resorts included.
func testDistinctClients(t *testing.T, s KeyPackageBackend, at time.Time) {
	ctx := context.Background()
	m := &kpMaker{at: at}
	a := mustClient(t, s, "alice", "a", at)
	b := mustClient(t, s, "alice", "b", at)
	c := mustClient(t, s, "alice", "c", at)
	mustAdd(t, s, a, m.batch(a.ID, suite1, 5), at)
	mustAdd(t, s, b, m.batch(b.ID, suite1, 2), at)
	mustAdd(t, s, c, []directory.StoredKeyPackage{m.kp(c.ID, suite1, true, at.Add(time.Hour))}, at)
	req := directory.ClaimRequest{UserID: a.UserID, Version: mls10, CipherSuite: suite1}
	cs, err := s.ClaimKeyPackages(ctx, []directory.ClaimRequest{req, req, req, req}, 1, at)
	if err != nil || len(cs) != 4 {
		t.Fatalf("ClaimKeyPackages = %+v, %v", cs, err)
	}
	// a (most stock), then b, then c's last resort; a fourth request finds every client used.
	for i, w := range []struct {
		client     int64
		lastResort bool
	}{{a.ID, false}, {b.ID, false}, {c.ID, true}} {
		if cs[i].Err != nil || cs[i].KeyPackage.ClientID != w.client || cs[i].KeyPackage.LastResort != w.lastResort {
			t.Fatalf("claim %d = client %d last resort %v (%v), want client %d, %v", i, cs[i].KeyPackage.ClientID,
				cs[i].KeyPackage.LastResort, cs[i].Err, w.client, w.lastResort)
		}
	}
	if !errors.Is(cs[3].Err, directory.ErrNoKeyPackage) {
		t.Fatalf("fourth claim = %+v", cs[3])
	}
	// Another suite of the same user is another key.
	cs, _ = s.ClaimKeyPackages(ctx, []directory.ClaimRequest{req, {UserID: a.UserID, Version: mls10, CipherSuite: suite2}, req}, 1, at)
	if cs[0].KeyPackage.ClientID != a.ID || !errors.Is(cs[1].Err, directory.ErrNoKeyPackage) || cs[2].KeyPackage.ClientID != b.ID {
		t.Fatalf("claims = %+v", cs)
	}
}

// testExhausted: the exhausted mark is set when a last resort is served for want of
// one-time KeyPackages, once, and cleared when a one-time one is served again;
// LastResortOnly serves the last resort while stock is left, without the mark.
func testExhausted(t *testing.T, s KeyPackageBackend, at time.Time) {
	ctx := context.Background()
	m := &kpMaker{at: at}
	c := mustClient(t, s, "alice", "phone", at)
	lr := m.kp(c.ID, suite1, true, at.Add(time.Hour))
	mustAdd(t, s, c, append(m.batch(c.ID, suite1, 2), lr), at)
	only := directory.ClaimRequest{UserID: c.UserID, Version: mls10, CipherSuite: suite1, LastResortOnly: true}
	cs, err := s.ClaimKeyPackages(ctx, []directory.ClaimRequest{only}, 5, at)
	if err != nil || !bytes.Equal(cs[0].KeyPackage.Ref, lr.Ref) || cs[0].Exhausted {
		t.Fatalf("LastResortOnly claim = %+v, %v; want the last resort, not exhausted", cs, err)
	}
	if st, _ := s.KeyPackageStock(ctx, c.ID, at); st[0].Available != 2 {
		t.Fatalf("LastResortOnly took a one-time KeyPackage: %+v", st)
	}
	flags := func(n int) string {
		t.Helper()
		out := make([]bool, n)
		for i := range out {
			cl := claim(t, s, c.UserID, suite1, 5, at)
			if cl.Err != nil {
				t.Fatal(cl.Err)
			}
			out[i] = cl.Exhausted
		}
		return fmt.Sprint(out)
	}
	// 2 one-time, then the last resort (exhausted, once).
	if got := flags(4); got != "[false false true false]" {
		t.Fatalf("exhausted flags = %s", got)
	}
	mustAdd(t, s, c, m.batch(c.ID, suite1, 1), at) // 1 < threshold: the low mark stays
	if got := flags(3); got != "[false true false]" {
		t.Fatalf("after one more KeyPackage: %s", got)
	}
	if err := s.ClearLowStock(ctx, c.ID, suite1); err != nil {
		t.Fatal(err)
	}
	if got := flags(1); got != "[true]" {
		t.Fatalf("after ClearLowStock: %s", got)
	}
}

func testExpiredNotServed(t *testing.T, s KeyPackageBackend, at time.Time) {
	ctx := context.Background()
	m := &kpMaker{at: at}
	a := mustClient(t, s, "alice", "a", at)
	b := mustClient(t, s, "alice", "b", at)
	var stale []directory.StoredKeyPackage
	for i := range 5 {
		stale = append(stale, m.kp(a.ID, suite1, false, at.Add(time.Duration(i+1)*time.Minute)))
	}
	fresh := m.kp(a.ID, suite1, false, at.Add(48*time.Hour))
	mustAdd(t, s, a, append(stale, fresh), at)
	bKPs := m.batch(b.ID, suite1, 2)
	mustAdd(t, s, b, bKPs, at)
	// An hour later a holds 1 usable KeyPackage and 5 expired ones, b holds 2: b has the
	// most stock.
	now := at.Add(time.Hour)
	c := claim(t, s, a.UserID, suite1, 1, now)
	if c.Err != nil || c.KeyPackage.ClientID != b.ID || c.Remaining != 1 {
		t.Fatalf("first claim = %+v (client %d, remaining %d), want b's with 1 remaining", c.Err, c.KeyPackage.ClientID, c.Remaining)
	}
	seen := map[string]bool{string(c.KeyPackage.Ref): true}
	for range 2 {
		c := claim(t, s, a.UserID, suite1, 1, now)
		if c.Err != nil || c.KeyPackage.NotAfter.Before(now) || seen[string(c.KeyPackage.Ref)] || c.Remaining != 0 {
			t.Fatalf("claim = %+v, %v", c.KeyPackage, c.Err)
		}
		seen[string(c.KeyPackage.Ref)] = true
	}
	if !seen[string(fresh.Ref)] {
		t.Fatal("a's usable KeyPackage was not served")
	}
	if c := claim(t, s, a.UserID, suite1, 1, now); !errors.Is(c.Err, directory.ErrNoKeyPackage) {
		t.Fatalf("claim after the usable stock ran out = %+v", c)
	}
	for _, kp := range stale {
		if _, err := s.ServedKeyPackage(ctx, kp.Ref); !errors.Is(err, directory.ErrNotFound) {
			t.Fatalf("an expired KeyPackage was recorded as served: %v", err)
		}
	}
}
