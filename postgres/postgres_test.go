package postgres

import (
	"context"
	"slices"
	"testing"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox/mailboxtest"
	"github.com/mimids/mimids/directory/storetest"
	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/federation/fedtest"
	"github.com/mimids/mimids/follower/followertest"
	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/hub/hubtest"
	"github.com/mimids/mimids/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// openTest opens a store on a fresh database.
func openTest(t testing.TB) *DB {
	t.Helper()
	return openDSN(t, freshDSN(t))
}

// freshDSN names a new database with the schema applied (copied from a
// template, which is faster than migrating each).
func freshDSN(t testing.TB) string {
	t.Helper()
	return pgtest.StartFrom(t, "schema", func(ctx context.Context, dsn string) error {
		db, err := Open(ctx, dsn, Options{})
		if err != nil {
			return err
		}
		return db.Close()
	})
}

// openDSN opens a store (a "node") on the database dsn names.
func openDSN(t testing.TB, dsn string) *DB {
	t.Helper()
	db, err := Open(context.Background(), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestHubConformance(t *testing.T) {
	hubtest.Run(t, func(t *testing.T) hub.Store { return openTest(t) })
}

func TestDirectoryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) directory.Store { return openTest(t) })
}

func TestDirectoryIDsNeverReused(t *testing.T) {
	storetest.RunIDs(t, func(t *testing.T) directory.Store { return openTest(t) })
}

func TestPolicyConformance(t *testing.T) {
	storetest.RunPolicy(t, func(t *testing.T) directory.PolicyStore { return openTest(t) })
}

func TestMailboxConformance(t *testing.T) {
	mailboxtest.Run(t, func(t *testing.T) mailboxtest.Store { return openTest(t) })
}

func TestGatewayKeyConformance(t *testing.T) {
	storetest.RunGatewayKeys(t, func(t *testing.T) directory.GatewayKeyStore { return openTest(t) })
}

func TestKeyPackageConformance(t *testing.T) {
	storetest.RunKeyPackages(t, func(t *testing.T) storetest.KeyPackageBackend { return openTest(t) })
}

func TestMigrationsRecordedAndIdempotent(t *testing.T) {
	dsn := pgtest.Start(t)
	var inc []byte
	for i := 0; i < 2; i++ {
		db, err := Open(context.Background(), dsn, Options{})
		if err != nil {
			t.Fatal(err)
		}
		v, err := db.SchemaVersion(context.Background())
		if err != nil || v < 1 {
			t.Fatalf("SchemaVersion = %d, %v", v, err)
		}
		if i == 1 && string(db.Incarnation().ID) != string(inc) {
			t.Fatalf("incarnation changed on reopen: %x, then %x", inc, db.Incarnation().ID)
		}
		inc = db.Incarnation().ID
		db.Close()
	}
	if len(inc) != 16 {
		t.Fatalf("incarnation %x, want 16 bytes", inc)
	}
}

// TestCopyCoversEveryTable: every table of the schema is copied by CopyFrom or
// named as left out, so a new migration's table cannot be forgotten by the copy.
func TestCopyCoversEveryTable(t *testing.T) {
	db := openTest(t)
	tables, err := db.Tables(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	known := append(slices.Clone(copyOrder), copySkipped...)
	slices.Sort(known)
	if !slices.Equal(tables, known) {
		t.Fatalf("tables %v\ncopied or skipped %v", tables, known)
	}
}

func TestFederationConformance(t *testing.T) {
	fedtest.Run(t, func(t *testing.T) federation.Store { return openTest(t) })
}

func TestLeaseConformance(t *testing.T) {
	fedtest.RunLeases(t, func(t *testing.T) federation.LeaseStore { return openTest(t) })
}

func TestFederationRecordJoinsOtherStores(t *testing.T) {
	fedtest.RunJoins(t, func(t *testing.T) fedtest.JoinStore { return openTest(t) })
}

func TestFollowerConformance(t *testing.T) {
	followertest.Run(t, func(t *testing.T) (followertest.Store, func() followertest.Store) {
		dsn := freshDSN(t)
		return openDSN(t, dsn), func() followertest.Store { return openDSN(t, dsn) }
	})
}

// TestMint: a new incarnation is kept by the store and read by the next Open.
func TestMint(t *testing.T) {
	ctx := context.Background()
	dsn := freshDSN(t)
	db := openDSN(t, dsn)
	old := db.Incarnation().ID
	inc, err := db.Mint(ctx, "restored the 02:00 backup")
	if err != nil || len(inc.ID) != 16 || string(inc.ID) == string(old) {
		t.Fatalf("Mint = %x, %v (old %x)", inc.ID, err, old)
	}
	if again := openDSN(t, dsn).Incarnation(); string(again.ID) != string(inc.ID) || again.Minted != "restored the 02:00 backup" {
		t.Fatalf("reopened with %+v, want %x", again, inc.ID)
	}
}

func TestAdminStore(t *testing.T) {
	storetest.RunAdmins(t, func(t *testing.T) storetest.AdminBackend { return openTest(t) })
}
