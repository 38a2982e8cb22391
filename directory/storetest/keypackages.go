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
	t.Run("tokens", func(t *testing.T) { testTokens(t, newStore(t), at) })
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
	tok, err := s.CreateDiscoveryToken(ctx, directory.DiscoveryToken{Policy: directory.TokenPerRequester, UserID: c.UserID,
		CreatedAt: at, ExpiresAt: at.Add(time.Hour)}, []byte("expiring token hash"))
	if err != nil {
		t.Fatal(err)
	}
	s.CreateDiscoveryToken(ctx, directory.DiscoveryToken{Policy: directory.TokenPerRequester, UserID: c.UserID,
		CreatedAt: at, ExpiresAt: at.Add(72 * time.Hour)}, []byte("lasting token hash"))
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
	if _, err := s.DiscoveryTokenByHash(ctx, []byte("expiring token hash")); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("expired token %d survived: %v", tok.ID, err)
	}
	if _, err := s.DiscoveryTokenByHash(ctx, []byte("lasting token hash")); err != nil {
		t.Fatalf("live token purged: %v", err)
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
	s.CreateDiscoveryToken(ctx, directory.DiscoveryToken{Policy: directory.TokenPerRequester, UserID: c.UserID, CreatedAt: at,
		ExpiresAt: at.Add(time.Hour)}, []byte("h"))
	if _, err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ServedKeyPackage(ctx, cl.KeyPackage.Ref); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("served record of a deleted user: %v", err)
	}
	if _, err := s.DiscoveryTokenByHash(ctx, []byte("h")); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("token of a deleted user: %v", err)
	}
	if st, _ := s.KeyPackageStock(ctx, c.ID, at); len(st) != 0 {
		t.Fatalf("KeyPackages of a deleted user: %+v", st)
	}
}

func testTokens(t *testing.T, s KeyPackageBackend, at time.Time) {
	ctx := context.Background()
	m := &kpMaker{at: at}
	c := mustClient(t, s, "alice", "phone", at)
	mustAdd(t, s, c, m.batch(c.ID, suite1, 3), at)
	tok, err := s.CreateDiscoveryToken(ctx, directory.DiscoveryToken{Policy: directory.TokenPerRequester, UserID: c.UserID,
		Requester: "b.example", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}, []byte("hash 1"))
	if err != nil || tok.ID == 0 {
		t.Fatalf("CreateDiscoveryToken = %+v, %v", tok, err)
	}
	got, err := s.DiscoveryTokenByHash(ctx, []byte("hash 1"))
	want := directory.DiscoveryToken{ID: tok.ID, Policy: directory.TokenPerRequester, UserID: c.UserID, UserName: "alice",
		Requester: "b.example", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}
	if err != nil || got != want {
		t.Fatalf("DiscoveryTokenByHash = %+v, %v; want %+v", got, err, want)
	}
	if _, err := s.DiscoveryTokenByHash(ctx, []byte("nope")); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("unknown token: %v", err)
	}
	// Claims presenting the token count its uses.
	use := at.Add(time.Minute)
	req := directory.ClaimRequest{UserID: c.UserID, Version: mls10, CipherSuite: suite1, TokenID: tok.ID}
	cs, err := s.ClaimKeyPackages(ctx, []directory.ClaimRequest{req, req}, 1, use)
	if err != nil || cs[0].Err != nil || cs[1].Err != nil {
		t.Fatalf("claims with a token: %+v, %v", cs, err)
	}
	got, _ = s.DiscoveryTokenByHash(ctx, []byte("hash 1"))
	if got.Uses != 2 || !got.LastUsed.Equal(use) {
		t.Fatalf("after two uses: %+v", got)
	}
	tok2, _ := s.CreateDiscoveryToken(ctx, directory.DiscoveryToken{Policy: directory.TokenPerRequester, UserID: c.UserID,
		CreatedAt: at, ExpiresAt: at.Add(time.Hour)}, []byte("hash 2"))
	list, err := s.ListDiscoveryTokens(ctx, 0, 10)
	if err != nil || len(list) != 2 || list[0].ID != tok.ID || list[1].ID != tok2.ID || list[0].Uses != 2 {
		t.Fatalf("ListDiscoveryTokens = %+v, %v", list, err)
	}
	if list, _ := s.ListDiscoveryTokens(ctx, tok.ID, 10); len(list) != 1 || list[0].ID != tok2.ID {
		t.Fatalf("ListDiscoveryTokens after the first = %+v", list)
	}
	if list, _ := s.ListDiscoveryTokens(ctx, 0, 1); len(list) != 1 {
		t.Fatalf("ListDiscoveryTokens limit 1 = %+v", list)
	}
	rev, err := s.RevokeDiscoveryToken(ctx, tok.ID, at.Add(2*time.Minute))
	if err != nil || !rev.RevokedAt.Equal(at.Add(2*time.Minute)) || !rev.Revoked() {
		t.Fatalf("RevokeDiscoveryToken = %+v, %v", rev, err)
	}
	if again, _ := s.RevokeDiscoveryToken(ctx, tok.ID, at.Add(time.Hour)); !again.RevokedAt.Equal(rev.RevokedAt) {
		t.Fatalf("second revoke moved the time: %+v", again)
	}
	if _, err := s.RevokeDiscoveryToken(ctx, 987654, at); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
	// A claim presenting a token revoked meanwhile fails and takes nothing.
	cs, err = s.ClaimKeyPackages(ctx, []directory.ClaimRequest{req}, 1, use)
	if err != nil || !errors.Is(cs[0].Err, directory.ErrTokenRevoked) {
		t.Fatalf("claim with a revoked token: %+v, %v", cs, err)
	}
	if st, _ := s.KeyPackageStock(ctx, c.ID, at); st[0].Available != 1 {
		t.Fatalf("a refused claim took a KeyPackage: %+v", st)
	}
	if got, _ := s.DiscoveryTokenByHash(ctx, []byte("hash 1")); got.Uses != 2 {
		t.Fatalf("a revoked token's use was counted: %+v", got)
	}
}

func testSharedToken(t *testing.T, s KeyPackageBackend, at time.Time) {
	ctx := context.Background()
	var wg sync.WaitGroup
	got := make([]string, 20)
	for i := range got {
		wg.Go(func() {
			tok, _, err := s.SharedDiscoveryToken(ctx, fmt.Sprintf("candidate %d", i), time.Time{}, at)
			if err != nil {
				t.Error(err)
			}
			got[i] = tok
		})
	}
	wg.Wait()
	for _, tok := range got {
		if tok != got[0] || tok == "" {
			t.Fatalf("concurrent first uses made different shared tokens: %q", got)
		}
	}
	tok, meta, err := s.SharedDiscoveryToken(ctx, "later candidate", time.Time{}, at.Add(time.Hour))
	if err != nil || tok != got[0] || meta.Policy != directory.TokenShared || meta.UserID != 0 || !meta.ExpiresAt.IsZero() {
		t.Fatalf("SharedDiscoveryToken again = %q %+v, %v", tok, meta, err)
	}
	if byHash, err := s.DiscoveryTokenByHash(ctx, directory.HashToken(tok)); err != nil || byHash.ID != meta.ID {
		t.Fatalf("shared token by hash = %+v, %v", byHash, err)
	}
	// Revoked: the next call makes a new one.
	s.RevokeDiscoveryToken(ctx, meta.ID, at.Add(time.Hour))
	tok2, meta2, err := s.SharedDiscoveryToken(ctx, "after revocation", at.Add(3*time.Hour), at.Add(2*time.Hour))
	if err != nil || tok2 != "after revocation" || meta2.ID == meta.ID || !meta2.ExpiresAt.Equal(at.Add(3*time.Hour)) {
		t.Fatalf("shared token after revocation = %q %+v, %v", tok2, meta2, err)
	}
	// Expired: likewise.
	tok3, _, err := s.SharedDiscoveryToken(ctx, "after expiry", time.Time{}, at.Add(3*time.Hour))
	if err != nil || tok3 != "after expiry" {
		t.Fatalf("shared token after expiry = %q, %v", tok3, err)
	}
	if list, _ := s.ListDiscoveryTokens(ctx, 0, 10); len(list) != 3 || !list[0].Revoked() {
		t.Fatalf("tokens = %+v", list)
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
