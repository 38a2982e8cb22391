package directory_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/protocol"
)

// TestUploadCheapChecksFirst: uploads refused for duplicates (in the store, or served),
// for the stock limit, or by the rate limit verify no signature.
func TestUploadCheapChecksFirst(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	var verified atomic.Int64
	e := newEnv(t, "a.example", now, envOpts{keyPackages: directory.KeyPackageConfig{MaxPerUpload: 10, MaxPerClient: 12,
		Metrics: directory.KeyPackageMetrics{Verified: func(n int) { verified.Add(int64(n)) }}}})
	c := e.client(t, "alice", "dev")
	id := "mimi://a.example/u/alice"
	g := newSigner(t, suite1)
	kps := g.keyPackages(t, id, now, 10)
	e.upload(t, c, kps...)
	if n := verified.Load(); n != 10 {
		t.Fatalf("%d verified for an upload of 10", n)
	}
	refused := func(what string, kps [][]byte, want error) {
		t.Helper()
		before := verified.Load()
		if _, err := e.kps.Upload(ctx, c, kps); !errors.Is(err, want) {
			t.Fatalf("%s: %v, want %v", what, err, want)
		}
		if n := verified.Load() - before; n != 0 {
			t.Fatalf("%s: %d KeyPackages verified before the refusal, want 0", what, n)
		}
	}
	fresh := g.keyPackage(t, id, now, kpOpts{})
	refused("re-upload", [][]byte{fresh, kps[3]}, directory.ErrDuplicateKeyPackage)
	refused("twice in one upload", [][]byte{fresh, fresh}, directory.ErrDuplicateKeyPackage)
	// A served KeyPackage stays known after its row is gone.
	served := e.fetch(t, "alice", e.token(t, "alice"), suite1).Response.KeyPackage
	refused("re-upload of a served one", [][]byte{served}, directory.ErrDuplicateKeyPackage)
	// 9 stored, limit 12: 3 fit, 4 do not.
	refused("over the stock", g.keyPackages(t, id, now, 4), directory.ErrKeyPackageLimit)
	e.upload(t, c, g.keyPackages(t, id, now, 3)...)
	// A last resort replaces nothing yet, so it does not fit either...
	refused("a last resort over the stock", [][]byte{g.keyPackage(t, id, now, kpOpts{lastResort: true})}, directory.ErrKeyPackageLimit)
	refused("garbage", [][]byte{[]byte("garbage")}, directory.ErrInvalidKeyPackage)
}

// TestUploadRateLimit: each client's uploads share a bucket; over it, uploads are
// refused with rate_limited before anything is decoded.
func TestUploadRateLimit(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	e := newEnv(t, "a.example", now, envOpts{keyPackages: directory.KeyPackageConfig{UploadRate: 0.001, UploadBurst: 3}})
	c, d := e.client(t, "alice", "dev"), e.client(t, "alice", "tablet")
	for i := range 3 {
		if _, err := e.kps.Upload(ctx, c, [][]byte{[]byte("garbage")}); !errors.Is(err, directory.ErrInvalidKeyPackage) {
			t.Fatalf("upload %d in the burst: %v", i, err)
		}
	}
	_, err := e.kps.Upload(ctx, c, [][]byte{[]byte("garbage")})
	if code, _ := protocol.CodeOf(err); !errors.Is(err, directory.ErrUploadRateLimited) || code != protocol.CodeRateLimited {
		t.Fatalf("upload past the burst: %v (code %s)", err, code)
	}
	g := newSigner(t, suite1)
	if _, err := e.kps.Upload(ctx, d, [][]byte{g.keyPackage(t, "mimi://a.example/u/alice", now, kpOpts{})}); err != nil {
		t.Fatalf("another client of the same user: %v", err)
	}
}

// BenchmarkUploadDuplicateFlood is a client re-sending one upload of 100 KeyPackages it
// already stored: the cost of each refusal (no rate limit here).
func BenchmarkUploadDuplicateFlood(b *testing.B) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	e := newEnv(b, "a.example", now, envOpts{})
	c := e.client(b, "alice", "dev")
	kps := newSigner(b, suite1).keyPackages(b, "mimi://a.example/u/alice", now, 100)
	e.upload(b, c, kps...)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.kps.Upload(ctx, c, kps); !errors.Is(err, directory.ErrDuplicateKeyPackage) {
			b.Fatal(err)
		}
	}
}

// BenchmarkUploadOverStock is a client at its stock limit sending fresh uploads of 100
// valid KeyPackages: the cost of each refusal.
func BenchmarkUploadOverStock(b *testing.B) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	e := newEnv(b, "a.example", now, envOpts{keyPackages: directory.KeyPackageConfig{MaxPerClient: 100}})
	c := e.client(b, "alice", "dev")
	g := newSigner(b, suite1)
	e.upload(b, c, g.keyPackages(b, "mimi://a.example/u/alice", now, 100)...)
	more := g.keyPackages(b, "mimi://a.example/u/alice", now, 100)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.kps.Upload(ctx, c, more); !errors.Is(err, directory.ErrKeyPackageLimit) {
			b.Fatal(err)
		}
	}
}
