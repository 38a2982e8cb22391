package sqlite

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/directory/storetest"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

func TestKeyPackageConformance(t *testing.T) {
	storetest.RunKeyPackages(t, func(t *testing.T) storetest.KeyPackageBackend { return openTest(t) })
}

func TestKeyPackagesMigration(t *testing.T) {
	db := openTest(t)
	if v, err := db.SchemaVersion(context.Background()); err != nil || v < 2 {
		t.Fatalf("SchemaVersion = %d, %v; want 2 or later", v, err)
	}
}

const benchUsers = 10

// stockKeyPackages gives each of benchUsers users (one client each) perUser synthetic
// KeyPackages of 300 bytes and returns the user IDs.
func stockKeyPackages(b *testing.B, db *DB, perUser int) []int64 {
	b.Helper()
	ctx := context.Background()
	data := make([]byte, 300)
	users := make([]int64, benchUsers)
	n := 0
	for u := range users {
		c, err := db.CreateClient(ctx, fmt.Sprintf("user%d", u), "dev", []byte{byte(u)}, true, testTime)
		if err != nil {
			b.Fatal(err)
		}
		users[u] = c.UserID
		for left := perUser; left > 0; {
			batch := make([]directory.StoredKeyPackage, min(left, 1000))
			for i := range batch {
				n++
				ref := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(n)))
				batch[i] = directory.StoredKeyPackage{Ref: ref[:], ClientID: c.ID, Version: mls.ProtocolVersionMLS10,
					CipherSuite: mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519, NotAfter: testTime.Add(30 * 24 * time.Hour), Data: data}
			}
			if err := db.AddKeyPackages(ctx, c.ID, batch, 1<<30, 5, testTime); err != nil {
				b.Fatal(err)
			}
			left -= len(batch)
		}
	}
	return users
}

func claimReq(user int64) directory.ClaimRequest {
	return directory.ClaimRequest{UserID: user, Version: mls.ProtocolVersionMLS10, CipherSuite: mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519}
}

func benchClaims(b *testing.B, bundle int, parallel bool) {
	db := openTest(b)
	users := stockKeyPackages(b, db, b.N*bundle/benchUsers+bundle+1)
	ctx := context.Background()
	claimOnce := func(i int) {
		reqs := make([]directory.ClaimRequest, bundle)
		for j := range reqs {
			reqs[j] = claimReq(users[(i+j)%benchUsers])
		}
		cs, err := db.ClaimKeyPackages(ctx, reqs, 5, testTime)
		if err != nil || cs[0].Err != nil {
			b.Errorf("claim: %v %v", err, cs)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		b.SetParallelism(4)
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				claimOnce(int(next.Add(1)))
			}
		})
	} else {
		for i := 0; i < b.N; i++ {
			claimOnce(i)
		}
	}
	b.ReportMetric(float64(b.N*bundle)/b.Elapsed().Seconds(), "claims/s")
}

// BenchmarkClaim measures KeyPackage claims against the SQLite store: one claim per
// transaction, bundles of 10 claims per transaction, and single claims from 4*GOMAXPROCS
// goroutines (group-committed).
func BenchmarkClaim(b *testing.B) {
	b.Run("single", func(b *testing.B) { benchClaims(b, 1, false) })
	b.Run("bundle10", func(b *testing.B) { benchClaims(b, 10, false) })
	b.Run("single_parallel", func(b *testing.B) { benchClaims(b, 1, true) })
	b.Run("bundle10_parallel", func(b *testing.B) { benchClaims(b, 10, true) })
}

// BenchmarkFetch measures the service's Fetch over SQLite: token and user lookups, the
// claim transaction and the response, for one request and for bundles of 10.
func BenchmarkFetch(b *testing.B) {
	for _, bundle := range []int{1, 10} {
		b.Run(fmt.Sprintf("bundle%d", bundle), func(b *testing.B) {
			db := openTest(b)
			stockKeyPackages(b, db, b.N*bundle/benchUsers+bundle+1)
			ctx := context.Background()
			dir := directory.New(db, "b.example")
			disc, err := directory.NewDiscovery(dir, db, directory.DiscoveryConfig{Policy: directory.TokenShared,
				Clock: func() time.Time { return testTime }})
			if err != nil {
				b.Fatal(err)
			}
			kps, err := directory.NewKeyPackages(dir, db, disc, mailbox.New(db, mailbox.Metrics{}), directory.KeyPackageConfig{}, nil)
			if err != nil {
				b.Fatal(err)
			}
			d, err := disc.Discover(ctx, "user0", "")
			if err != nil {
				b.Fatal(err)
			}
			// Bundle i asks for users i, i+1, ... so that claims spread evenly.
			reqs := make([]protocol.KeyPackageRequestBundle, benchUsers)
			for i := range reqs {
				reqs[i].Requests = make([]protocol.KeyPackageRequest, bundle)
				for j := range reqs[i].Requests {
					reqs[i].Requests[j] = protocol.KeyPackageRequest{UserID: fmt.Sprintf("mimi://b.example/u/user%d", (i+j)%benchUsers),
						BearerToken: d.BearerToken, Version: mls.ProtocolVersionMLS10, CipherSuite: mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519}
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				resp, err := kps.Fetch(ctx, reqs[i%benchUsers], testTime)
				if err != nil || resp.Results[0].Status != protocol.StatusOK {
					b.Fatalf("Fetch: %v %+v", err, resp.Results[0])
				}
			}
			b.ReportMetric(float64(b.N*bundle)/b.Elapsed().Seconds(), "keypackages/s")
		})
	}
}
