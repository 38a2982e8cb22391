package directory_test

import (
	"context"
	"crypto/sha256"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/sqlite"
)

const (
	suite1 = mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519
	suite2 = mls.MLS128DHKEMP256AES128GCMSHA256P256
	mls10  = mls.ProtocolVersionMLS10
)

type hexBytes = mlstest.Hex

type fixtureKP = mlstest.KeyPackageFixture

type fixtureFile = mlstest.KeyPackageFixtures

// loadFixtures reads the ts-mls KeyPackages; a missing file fails the test.
func loadFixtures(t testing.TB) fixtureFile {
	t.Helper()
	f, err := mlstest.LoadKeyPackageFixtures(filepath.Join("..", "mls", "testdata", "tsmls", "keypackages.json"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// env is one provider: a directory over a real SQLite file with discovery, KeyPackages
// and a mailbox.
type env struct {
	db    *sqlite.DB
	dir   *directory.Directory
	disc  *directory.Discovery
	kps   *directory.KeyPackages
	mb    *mailbox.Mailbox
	clock *clock
}

type envOpts struct {
	discovery   directory.DiscoveryConfig
	keyPackages directory.KeyPackageConfig
	notifier    func(*mailbox.Mailbox) directory.Notifier
}

func newEnv(t testing.TB, domain string, now time.Time, o envOpts) *env {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "mimids.db"), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{db: db, dir: directory.New(db, domain), mb: mailbox.New(db, mailbox.Metrics{}), clock: &clock{t: now}}
	o.discovery.Clock = e.clock.Now
	o.keyPackages.Clock = e.clock.Now
	if e.disc, err = directory.NewDiscovery(e.dir, db, o.discovery); err != nil {
		t.Fatal(err)
	}
	var n directory.Notifier = e.mb
	if o.notifier != nil {
		n = o.notifier(e.mb)
	}
	if e.kps, err = directory.NewKeyPackages(e.dir, db, e.disc, n, o.keyPackages, nil); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) client(t testing.TB, user, name string) directory.Client {
	t.Helper()
	c, _, err := e.dir.AddClient(context.Background(), user, name, true)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) token(t testing.TB, user string) string {
	t.Helper()
	d, err := e.disc.Discover(context.Background(), user, "test")
	if err != nil {
		t.Fatal(err)
	}
	return d.BearerToken
}

func (e *env) upload(t testing.TB, c directory.Client, kps ...[]byte) [][]byte {
	t.Helper()
	refs, err := e.kps.Upload(context.Background(), c, kps)
	if err != nil {
		t.Fatalf("Upload: %v", err)
	}
	return refs
}

// fetch asks for one KeyPackage of user with token.
func (e *env) fetch(t testing.TB, user, token string, suite mls.CipherSuite) protocol.KeyPackageResult {
	t.Helper()
	resp, err := e.kps.Fetch(context.Background(), protocol.KeyPackageRequestBundle{Requests: []protocol.KeyPackageRequest{
		{UserID: protocol.UserURI(e.dir.Domain(), user), BearerToken: token, Version: mls10, CipherSuite: suite}}}, e.clock.Now())
	if err != nil || len(resp.Results) != 1 {
		t.Fatalf("Fetch = %+v, %v", resp, err)
	}
	return resp.Results[0]
}

// signer builds and signs KeyPackages in Go (mls/mlstest), each with fresh keys.
type signer struct {
	suite mls.CipherSuite
}

func newSigner(t testing.TB, suite mls.CipherSuite) *signer {
	t.Helper()
	if _, err := suite.Suite(); err != nil {
		t.Fatal(err)
	}
	return &signer{suite: suite}
}

type kpOpts struct {
	lifetime   mls.Lifetime // zero: [now-1h, now+30d] of the given time
	lastResort bool
	bare       bool                  // encode a bare KeyPackage instead of an MLSMessage
	mutate     func(*mls.KeyPackage) // before signing
}

// keyPackage returns a signed KeyPackage for identity, valid around now.
func (g *signer) keyPackage(t testing.TB, identity string, now time.Time, o kpOpts) []byte {
	t.Helper()
	b, _, err := mlstest.NewKeyPackage(mlstest.KeyPackageOptions{CipherSuite: g.suite, Identity: identity, Now: now,
		Lifetime: o.lifetime, LastResort: o.lastResort, Bare: o.bare, Mutate: o.mutate})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// keyPackages returns n signed KeyPackages for identity.
func (g *signer) keyPackages(t testing.TB, identity string, now time.Time, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = g.keyPackage(t, identity, now, kpOpts{})
	}
	return out
}

// refOf returns the KeyPackageRef of an encoded KeyPackage (bare or framed).
func refOf(t testing.TB, b []byte) []byte {
	t.Helper()
	kp, err := mls.DecodeKeyPackageMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := kp.Ref()
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// leafKeyHash is the SHA-256 of a KeyPackage's leaf signature key, as the served record
// keeps it.
func leafKeyHash(t testing.TB, b []byte) []byte {
	t.Helper()
	kp, err := mls.DecodeKeyPackageMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(kp.LeafNode.SignatureKey)
	return sum[:]
}
