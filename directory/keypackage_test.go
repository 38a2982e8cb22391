package directory_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// TestTSMLSKeyPackages uploads the ts-mls KeyPackages to the provider each belongs to,
// then fetches every one back.
func TestTSMLSKeyPackages(t *testing.T) {
	f := loadFixtures(t)
	now := time.Unix(f.ValidationTime, 0)
	ctx := context.Background()
	for _, domain := range []string{"a.example", "b.example"} {
		t.Run(domain, func(t *testing.T) {
			e := newEnv(t, domain, now, envOpts{})
			byUser := map[string][]fixtureKP{}
			var users []string
			for _, kp := range f.KeyPackages {
				if kp.Provider != domain {
					continue
				}
				if byUser[kp.User] == nil {
					users = append(users, kp.User)
				}
				byUser[kp.User] = append(byUser[kp.User], kp)
			}
			if len(users) != 3 {
				t.Fatalf("%s: users %v", domain, users)
			}
			for _, user := range users {
				c := e.client(t, user, "dev")
				var up [][]byte
				for i, kp := range byUser[user] {
					if i%2 == 0 {
						up = append(up, kp.KeyPackage) // MLSMessage
					} else {
						up = append(up, kp.KeyPackageBare)
					}
				}
				refs := e.upload(t, c, up...)
				regular, lastResort := 0, false
				for i, kp := range byUser[user] {
					if !bytes.Equal(refs[i], kp.KeyPackageRef) {
						t.Fatalf("%s KeyPackage %d: ref %x, fixture says %x", user, i, refs[i], kp.KeyPackageRef)
					}
					if kp.LastResort {
						lastResort = true
					} else {
						regular++
					}
				}
				st, err := e.kps.Count(ctx, c, suite1)
				if err != nil || st.Available != regular || st.LastResort != lastResort {
					t.Fatalf("%s: Count = %+v, %v; want %d, %v", user, st, err, regular, lastResort)
				}
				checkFetchAll(t, e, user, byUser[user], c)
			}
		})
	}
}

// checkFetchAll fetches every KeyPackage of user and checks the served bytes, the order
// (regular ones, then the last resort repeatedly) and the served mapping.
func checkFetchAll(t *testing.T, e *env, user string, kps []fixtureKP, c directory.Client) {
	t.Helper()
	token := e.token(t, user)
	want := map[string]bool{}
	var lr []byte
	for _, kp := range kps {
		if kp.LastResort {
			lr = kp.KeyPackageBare
		} else {
			want[string(kp.KeyPackageBare)] = true
		}
	}
	for range len(want) {
		r := e.fetch(t, user, token, suite1)
		if r.Status != protocol.StatusOK || !want[string(r.Response.KeyPackage)] {
			t.Fatalf("%s: fetch = %s %q, want one of the regular KeyPackages", user, r.Status, r.Message)
		}
		delete(want, string(r.Response.KeyPackage))
		got, err := e.kps.ServedKeyPackage(context.Background(), refOf(t, r.Response.KeyPackage))
		if err != nil || got.Client.ID != c.ID || !bytes.Equal(got.LeafKeyHash, leafKeyHash(t, r.Response.KeyPackage)) {
			t.Fatalf("ServedKeyPackage = %+v, %v", got, err)
		}
	}
	for range 2 {
		r := e.fetch(t, user, token, suite1)
		switch {
		case lr == nil && r.Status != protocol.StatusNoKeyPackage:
			t.Fatalf("%s: fetch after the stock ran out = %s, want no_key_package", user, r.Status)
		case lr != nil && (r.Status != protocol.StatusOK || !bytes.Equal(r.Response.KeyPackage, lr)):
			t.Fatalf("%s: fetch after the stock ran out = %s, want the last resort", user, r.Status)
		}
	}
}

// mismatchReason maps each invalid_key_packages reason to the mls error it must cause.
var mismatchReason = map[string]error{
	"expired":                             mls.ErrKeyPackageExpired,
	"not_yet_valid":                       mls.ErrKeyPackageNotYetValid,
	"bad_key_package_signature":           mls.ErrKeyPackageSignature,
	"bad_leaf_node_signature":             mls.ErrLeafNodeSignature,
	"init_key_equals_encryption_key":      mls.ErrInitKeyIsEncryptionKey,
	"credential_type_not_in_capabilities": mls.ErrCredentialNotSupported,
	"leaf_extension_not_in_capabilities":  mls.ErrExtensionNotSupported,
}

func TestTSMLSInvalidKeyPackages(t *testing.T) {
	f := loadFixtures(t)
	now := time.Unix(f.ValidationTime, 0)
	ctx := context.Background()
	e := newEnv(t, "b.example", now, envOpts{})
	good := e.client(t, "frank", "dev")
	var frankKP []byte
	for _, kp := range f.KeyPackages {
		if kp.User == "frank" {
			frankKP = kp.KeyPackage
		}
	}
	for _, kp := range f.Invalid {
		t.Run(kp.Reason, func(t *testing.T) {
			want, ok := mismatchReason[kp.Reason]
			if !ok {
				t.Fatalf("no expected error for reason %q", kp.Reason)
			}
			c := e.client(t, kp.User, kp.Reason)
			_, err := e.kps.Upload(ctx, c, [][]byte{kp.KeyPackage})
			var ue *directory.UploadError
			if !errors.As(err, &ue) || ue.Index != 0 || !errors.Is(err, directory.ErrInvalidKeyPackage) || !errors.Is(err, want) {
				t.Fatalf("Upload = %v; want UploadError{0} wrapping ErrInvalidKeyPackage and %v", err, want)
			}
			// One bad KeyPackage refuses the whole upload.
			_, err = e.kps.Upload(ctx, good, [][]byte{frankKP, kp.KeyPackage})
			if !errors.As(err, &ue) || ue.Index != 1 || !errors.Is(err, want) {
				t.Fatalf("mixed upload = %v", err)
			}
			if st, _ := e.kps.Count(ctx, good, suite1); st.Available != 0 {
				t.Fatalf("refused upload stored %+v", st)
			}
		})
	}
}

func TestUploadIdentity(t *testing.T) {
	f := loadFixtures(t)
	now := time.Unix(f.ValidationTime, 0)
	ctx := context.Background()
	e := newEnv(t, "a.example", now, envOpts{})
	alice := e.client(t, "alice", "dev")
	for _, kp := range f.KeyPackages {
		if kp.User == "alice" {
			continue
		}
		// carol's KeyPackage (same provider) and bob's (another provider) name someone else.
		_, err := e.kps.Upload(ctx, alice, [][]byte{kp.KeyPackage})
		if !errors.Is(err, directory.ErrIdentityMismatch) {
			t.Fatalf("alice uploads %s's KeyPackage: %v, want ErrIdentityMismatch", kp.Identity, err)
		}
	}
	g := newSigner(t, suite1)
	// alice of another provider, a client URI, and a non-basic credential.
	for _, id := range []string{"mimi://b.example/u/alice", "mimi://a.example/d/alice/dev", "alice"} {
		if _, err := e.kps.Upload(ctx, alice, [][]byte{g.keyPackage(t, id, now, kpOpts{})}); !errors.Is(err, directory.ErrIdentityMismatch) {
			t.Fatalf("identity %q: %v", id, err)
		}
	}
	x509 := g.keyPackage(t, "", now, kpOpts{mutate: func(kp *mls.KeyPackage) {
		kp.LeafNode.Credential = mls.Credential{CredentialType: mls.CredentialTypeX509, Certificates: []mls.Certificate{{CertData: []byte("cert")}}}
		kp.LeafNode.Capabilities.Credentials = []mls.CredentialType{mls.CredentialTypeX509}
	}})
	if _, err := e.kps.Upload(ctx, alice, [][]byte{x509}); !errors.Is(err, directory.ErrIdentityMismatch) {
		t.Fatalf("x509 credential: %v", err)
	}
	if _, err := e.kps.Upload(ctx, alice, [][]byte{[]byte("garbage")}); !errors.Is(err, directory.ErrInvalidKeyPackage) {
		t.Fatalf("garbage: %v", err)
	}
	if refs := e.upload(t, alice, g.keyPackage(t, "mimi://a.example/u/alice", now, kpOpts{bare: true})); len(refs) != 1 {
		t.Fatal("bare KeyPackage refused")
	}
}

func TestUploadRules(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	e := newEnv(t, "a.example", now, envOpts{keyPackages: directory.KeyPackageConfig{MaxPerUpload: 10, MaxPerClient: 12}})
	c := e.client(t, "alice", "dev")
	id := "mimi://a.example/u/alice"
	g, g2 := newSigner(t, suite1), newSigner(t, suite2)
	kps := g.keyPackages(t, id, now, 3)
	t.Run("duplicates", func(t *testing.T) {
		if _, err := e.kps.Upload(ctx, c, [][]byte{kps[0], kps[1], kps[0]}); !isUploadErr(err, 2, directory.ErrDuplicateKeyPackage) {
			t.Fatalf("twice in one upload: %v", err)
		}
		e.upload(t, c, kps[0], kps[1])
		if _, err := e.kps.Upload(ctx, c, [][]byte{kps[2], kps[1]}); !isUploadErr(err, 1, directory.ErrDuplicateKeyPackage) {
			t.Fatalf("re-upload: %v", err)
		}
		// The same KeyPackage bare is the same KeyPackage.
		bare, _ := mls.DecodeKeyPackageMessage(kps[0])
		b, _ := bare.Marshal()
		if _, err := e.kps.Upload(ctx, c, [][]byte{b}); !isUploadErr(err, 0, directory.ErrDuplicateKeyPackage) {
			t.Fatalf("re-upload bare: %v", err)
		}
	})
	t.Run("last resort", func(t *testing.T) {
		lr1 := g.keyPackage(t, id, now, kpOpts{lastResort: true})
		lr2 := g.keyPackage(t, id, now, kpOpts{lastResort: true})
		lrOther := g2.keyPackage(t, id, now, kpOpts{lastResort: true})
		if _, err := e.kps.Upload(ctx, c, [][]byte{lr1, lr2}); !isUploadErr(err, 1, directory.ErrLastResortConflict) {
			t.Fatalf("two last resorts of a suite: %v", err)
		}
		e.upload(t, c, lr1, lrOther)
		e.upload(t, c, lr2)
		stock, _ := e.kps.Stock(ctx, c)
		if len(stock) != 2 || !stock[0].LastResort || !stock[1].LastResort || stock[0].Available != 2 {
			t.Fatalf("stock = %+v", stock)
		}
		tok := e.token(t, "alice")
		e.fetch(t, "alice", tok, suite1)
		e.fetch(t, "alice", tok, suite1)
		if r := e.fetch(t, "alice", tok, suite1); !bytes.Equal(refOf(t, r.Response.KeyPackage), refOf(t, lr2)) {
			t.Fatal("the replaced last resort was served")
		}
	})
	t.Run("limits", func(t *testing.T) {
		if _, err := e.kps.Upload(ctx, c, g.keyPackages(t, id, now, 11)); !errors.Is(err, protocol.ErrBundleTooLarge) {
			t.Fatalf("11 in one upload (limit 10): %v", err)
		}
		if _, err := e.kps.Upload(ctx, c, nil); !errors.Is(err, directory.ErrMalformed) {
			t.Fatalf("empty upload: %v", err)
		}
		// 2 last resorts stored; 10 more fit, 11 do not.
		e.upload(t, c, g.keyPackages(t, id, now, 10)...)
		if _, err := e.kps.Upload(ctx, c, g.keyPackages(t, id, now, 1)); !errors.Is(err, directory.ErrKeyPackageLimit) {
			t.Fatalf("over the per-client limit: %v", err)
		}
	})
	t.Run("revoked client", func(t *testing.T) {
		d := e.client(t, "alice", "old")
		e.dir.RevokeClient(ctx, "alice", "old")
		d.RevokedAt = now
		if _, err := e.kps.Upload(ctx, d, g.keyPackages(t, id, now, 1)); !errors.Is(err, directory.ErrBadToken) {
			t.Fatalf("revoked client: %v", err)
		}
	})
}

func isUploadErr(err error, index int, want error) bool {
	var ue *directory.UploadError
	return errors.As(err, &ue) && ue.Index == index && errors.Is(err, want)
}

// TestBundleIndependence answers one bundle whose requests fail in every way; each gets
// its own status and the good ones their KeyPackage. bob and carol have two clients
// each, so that the bundle may name each twice.
func TestBundleIndependence(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	e := newEnv(t, "b.example", now, envOpts{})
	bob, bobTab, carol := e.client(t, "bob", "dev"), e.client(t, "bob", "tab"), e.client(t, "carol", "dev")
	e.client(t, "carol", "tab") // no KeyPackages
	g := newSigner(t, suite1)
	e.upload(t, bob, g.keyPackages(t, "mimi://b.example/u/bob", now, 3)...)
	e.upload(t, bobTab, g.keyPackages(t, "mimi://b.example/u/bob", now, 1)...)
	e.upload(t, carol, g.keyPackages(t, "mimi://b.example/u/carol", now, 1)...)
	bobTok, carolTok, revoked := e.token(t, "bob"), e.token(t, "carol"), e.token(t, "bob")
	if _, err := e.disc.RevokeTokenString(ctx, revoked); err != nil {
		t.Fatal(err)
	}
	q := func(user, tok string, v mls.ProtocolVersion, s mls.CipherSuite) protocol.KeyPackageRequest {
		return protocol.KeyPackageRequest{UserID: user, BearerToken: tok, Version: v, CipherSuite: s}
	}
	bobURI := "mimi://b.example/u/bob"
	reqs := []protocol.KeyPackageRequest{
		q(bobURI, bobTok, mls10, suite1),
		q("mimi://b.example/u/nobody", bobTok, mls10, suite1), // bob's token, for a name nobody has
		q(bobURI, "mbt_made_up", mls10, suite1),
		q(bobURI, revoked, mls10, suite1),
		q(bobURI, carolTok, mls10, suite1), // carol's token for bob
		q(bobURI, bobTok, mls10, suite2),
		q(bobURI, bobTok, 2, suite1),
		q(bobURI, "", mls10, suite1),
		q("mimi://a.example/u/bob", bobTok, mls10, suite1), // another provider's bob
		q("bob", bobTok, mls10, suite1),                    // a bare name works too
		q("mimi://b.example/u/carol", carolTok, mls10, suite1),
		q("mimi://b.example/u/carol", carolTok, mls10, suite1),
	}
	want := []protocol.FetchStatus{protocol.StatusOK, protocol.StatusBadToken, protocol.StatusBadToken,
		protocol.StatusRevokedToken, protocol.StatusBadToken, protocol.StatusNoKeyPackage, protocol.StatusNoKeyPackage,
		protocol.StatusBadToken, protocol.StatusBadToken, protocol.StatusOK, protocol.StatusOK, protocol.StatusNoKeyPackage}
	body, err := protocol.KeyPackageRequestBundle{Requests: reqs}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.kps.ServeBundle(ctx, body, now)
	if err != nil {
		t.Fatal(err)
	}
	var resp protocol.KeyPackageResponseBundle
	if err := resp.UnmarshalBinary(out); err != nil || len(resp.Results) != len(reqs) {
		t.Fatalf("response bundle: %d results, %v", len(resp.Results), err)
	}
	for i, r := range resp.Results {
		if r.Status != want[i] {
			t.Errorf("request %d: %s %q, want %s", i, r.Status, r.Message, want[i])
		}
		if r.Status == protocol.StatusOK {
			if _, err := r.Response.Decode(); err != nil {
				t.Errorf("request %d: served KeyPackage does not decode: %v", i, err)
			}
		} else if r.Message == "" || bytes.Contains([]byte(r.Message), []byte("mbt_")) {
			t.Errorf("request %d: message %q", i, r.Message)
		}
	}
	if !resp.Results[3].Status.DiscoverAgain() || !resp.Results[2].Status.DiscoverAgain() {
		t.Error("token failures must say discover again")
	}
	// An oversized bundle is refused as a whole.
	big := protocol.KeyPackageRequestBundle{Requests: make([]protocol.KeyPackageRequest, protocol.MaxBundleRequests+1)}
	if _, err := e.kps.Fetch(ctx, big, now); !errors.Is(err, protocol.ErrBundleTooLarge) {
		t.Fatalf("Fetch(101 requests) = %v", err)
	}
	if _, err := e.kps.ServeBundle(ctx, []byte{0x40}, now); !errors.Is(err, directory.ErrMalformed) {
		t.Fatalf("ServeBundle(garbage) = %v", err)
	}
	if _, err := e.kps.FetchOne(ctx, q(bobURI, revoked, mls10, suite1), now); !errors.Is(err, directory.ErrTokenRevoked) {
		t.Fatalf("FetchOne(revoked) = %v", err)
	}
	if r, err := e.kps.FetchOne(ctx, q(bobURI, bobTok, mls10, suite1), now); err != nil || len(r.KeyPackage) == 0 {
		t.Fatalf("FetchOne = %v", err)
	}
	// Requests 0 and 9 were served by bob's two clients, one each.
	if st, _ := e.kps.Count(ctx, bobTab, suite1); st.Available != 0 {
		t.Fatalf("bob's second client: %+v", st)
	}
}

// TestConcurrentFetches: 50 parallel fetches against a stock of 10 plus a last resort.
func TestConcurrentFetches(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	var uploaded, fetchedOK, fetchedLR, notices atomic.Int64
	metrics := directory.KeyPackageMetrics{
		Uploaded: func(n int) { uploaded.Add(int64(n)) },
		Fetched: func(s protocol.FetchStatus, lastResort bool) {
			if s == protocol.StatusOK {
				fetchedOK.Add(1)
			}
			if lastResort {
				fetchedLR.Add(1)
			}
		},
		LowStockNotices: func() { notices.Add(1) },
	}
	e := newEnv(t, "b.example", now, envOpts{keyPackages: directory.KeyPackageConfig{Metrics: metrics}})
	bob := e.client(t, "bob", "dev")
	id := "mimi://b.example/u/bob"
	g := newSigner(t, suite1)
	lr := g.keyPackage(t, id, now, kpOpts{lastResort: true})
	e.upload(t, bob, append(g.keyPackages(t, id, now, 10), lr)...)
	tok := e.token(t, "bob")
	var mu sync.Mutex
	served := map[string]int{}
	var wg sync.WaitGroup
	var got [][]byte
	req := protocol.KeyPackageRequestBundle{Requests: []protocol.KeyPackageRequest{
		{UserID: id, BearerToken: tok, Version: mls10, CipherSuite: suite1}}}
	for range 50 {
		wg.Go(func() {
			resp, err := e.kps.Fetch(ctx, req, now)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || resp.Results[0].Status != protocol.StatusOK {
				t.Errorf("fetch: %v %+v", err, resp)
				return
			}
			got = append(got, resp.Results[0].Response.KeyPackage)
		})
	}
	wg.Wait()
	for _, kp := range got {
		served[string(refOf(t, kp))]++
	}
	lrRef := string(refOf(t, lr))
	if len(served) != 11 || served[lrRef] != 40 {
		t.Fatalf("%d distinct KeyPackages, last resort %d times; want 11 and 40", len(served), served[lrRef])
	}
	for ref, n := range served {
		if ref != lrRef && n != 1 {
			t.Fatalf("KeyPackage %x served %d times", ref, n)
		}
		if s, err := e.kps.ServedKeyPackage(ctx, []byte(ref)); err != nil || s.Client.ID != bob.ID {
			t.Fatalf("ServedKeyPackage = %+v, %v", s, err)
		}
	}
	// One key_packages_low notice, and one key_packages_exhausted when the last resort
	// was first served.
	entries, _ := e.mb.Fetch(ctx, bob.ID, 0, 100)
	kinds := map[uint16]int{}
	for _, en := range entries {
		kinds[en.Kind]++
	}
	if len(entries) != 2 || kinds[uint16(protocol.KindKeyPackagesLow)] != 1 || kinds[uint16(protocol.KindKeyPackagesExhausted)] != 1 {
		t.Fatalf("notices by kind: %v, want one of each", kinds)
	}
	if uploaded.Load() != 11 || fetchedOK.Load() != 50 || fetchedLR.Load() != 40 || notices.Load() != 1 {
		t.Fatalf("metrics: uploaded %d, fetched %d, last resort %d, notices %d", uploaded.Load(), fetchedOK.Load(), fetchedLR.Load(), notices.Load())
	}
}

// TestLowStockNotice: the notice is queued once per crossing of the threshold.
func TestLowStockNotice(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	var failing sync.Mutex
	fail := false
	e := newEnv(t, "b.example", now, envOpts{keyPackages: directory.KeyPackageConfig{LowThreshold: 3},
		notifier: func(mb *mailbox.Mailbox) directory.Notifier {
			return notifierFunc(func(ctx context.Context, tg mailbox.Target, kind uint16, p []byte) (int, error) {
				failing.Lock()
				defer failing.Unlock()
				if fail {
					return 0, errors.New("mailbox full")
				}
				return mb.Enqueue(ctx, tg, kind, p)
			})
		}})
	bob := e.client(t, "bob", "dev")
	id := "mimi://b.example/u/bob"
	g := newSigner(t, suite1)
	e.upload(t, bob, g.keyPackages(t, id, now, 4)...)
	tok := e.token(t, "bob")
	notices := func() []protocol.KeyPackagesLow {
		t.Helper()
		entries, err := e.mb.Fetch(ctx, bob.ID, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]protocol.KeyPackagesLow, len(entries))
		for i, en := range entries {
			if en.Kind != uint16(protocol.KindKeyPackagesLow) {
				t.Fatalf("entry kind %d", en.Kind)
			}
			if err := out[i].UnmarshalBinary(en.Payload); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	e.fetch(t, "bob", tok, suite1) // 3 left: not under 3
	if n := notices(); len(n) != 0 {
		t.Fatalf("notices at 3 = %+v", n)
	}
	e.fetch(t, "bob", tok, suite1) // 2 left: crossing
	e.fetch(t, "bob", tok, suite1) // 1 left: no second notice
	if n := notices(); fmt.Sprint(n) != fmt.Sprint([]protocol.KeyPackagesLow{{CipherSuite: suite1, Remaining: 2}}) {
		t.Fatalf("notices = %+v", n)
	}
	e.upload(t, bob, g.keyPackages(t, id, now, 4)...) // 5: back over the threshold
	failing.Lock()
	fail = true
	failing.Unlock()
	e.fetch(t, "bob", tok, suite1) // 4
	e.fetch(t, "bob", tok, suite1) // 3
	e.fetch(t, "bob", tok, suite1) // 2: crossing, but the notice fails
	failing.Lock()
	fail = false
	failing.Unlock()
	e.fetch(t, "bob", tok, suite1) // 1: the mark was cleared, so this one notifies
	if n := notices(); len(n) != 2 || n[1].Remaining != 1 {
		t.Fatalf("notices = %+v", n)
	}
}

type notifierFunc func(ctx context.Context, t mailbox.Target, kind uint16, payload []byte) (int, error)

func (f notifierFunc) Enqueue(ctx context.Context, t mailbox.Target, kind uint16, payload []byte) (int, error) {
	return f(ctx, t, kind, payload)
}

func TestPurgeExpired(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	e := newEnv(t, "b.example", now, envOpts{})
	bob := e.client(t, "bob", "dev")
	id := "mimi://b.example/u/bob"
	g := newSigner(t, suite1)
	short := mls.Lifetime{NotBefore: uint64(now.Add(-time.Hour).Unix()), NotAfter: uint64(now.Add(time.Hour).Unix())}
	e.upload(t, bob, g.keyPackage(t, id, now, kpOpts{lifetime: short}), g.keyPackage(t, id, now, kpOpts{lifetime: short}),
		g.keyPackage(t, id, now, kpOpts{}))
	tok := e.token(t, "bob")
	r := e.fetch(t, "bob", tok, suite1) // serves a short one
	ref := refOf(t, r.Response.KeyPackage)
	later := now.Add(2 * time.Hour)
	e.clock.Set(later)
	if st, _ := e.kps.Count(ctx, bob, suite1); st.Available != 1 {
		t.Fatalf("count after expiry = %+v", st)
	}
	st, err := e.kps.Purge(ctx, later)
	if err != nil || st.KeyPackages != 1 || st.Served != 1 {
		t.Fatalf("Purge = %+v, %v", st, err)
	}
	if _, err := e.kps.ServedKeyPackage(ctx, ref); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("served record survived the purge: %v", err)
	}
	// The expired one is never served even before a purge: only the long one is left.
	if r := e.fetch(t, "bob", tok, suite1); r.Status != protocol.StatusOK {
		t.Fatalf("fetch = %s", r.Status)
	}
	if r := e.fetch(t, "bob", tok, suite1); r.Status != protocol.StatusNoKeyPackage {
		t.Fatalf("fetch = %s", r.Status)
	}
}

func TestKeyPackageConfig(t *testing.T) {
	if err := (directory.KeyPackageConfig{}).Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	err := directory.KeyPackageConfig{MaxPerUpload: 5000, MaxPerClient: -1, LowThreshold: -2}.Validate()
	if err == nil || len(err.(interface{ Unwrap() []error }).Unwrap()) < 3 {
		t.Fatalf("Validate = %v, want every problem", err)
	}
}

// claimFailer is a store whose claims fail.
type claimFailer struct{ directory.KeyPackageStore }

func (claimFailer) ClaimKeyPackages(context.Context, []directory.ClaimRequest, int, time.Time) ([]directory.Claim, error) {
	return nil, errors.New("disk on fire")
}

func TestFetchStoreFailure(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	e := newEnv(t, "b.example", now, envOpts{})
	e.client(t, "bob", "dev")
	tok := e.token(t, "bob")
	kps, err := directory.NewKeyPackages(e.dir, claimFailer{e.db}, e.disc, e.mb, directory.KeyPackageConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := kps.Fetch(ctx, protocol.KeyPackageRequestBundle{Requests: []protocol.KeyPackageRequest{
		{UserID: "bob", BearerToken: tok, Version: mls10, CipherSuite: suite1},
		{UserID: "bob", BearerToken: "wrong", Version: mls10, CipherSuite: suite1},
	}}, now)
	if err != nil || resp.Results[0].Status != protocol.StatusInternal || resp.Results[1].Status != protocol.StatusBadToken ||
		bytes.Contains([]byte(resp.Results[0].Message), []byte("fire")) {
		t.Fatalf("Fetch = %+v, %v", resp, err)
	}
	if _, err := directory.NewKeyPackages(e.dir, e.db, e.disc, nil, directory.KeyPackageConfig{}, nil); err == nil {
		t.Fatal("NewKeyPackages without a notifier")
	}
}
