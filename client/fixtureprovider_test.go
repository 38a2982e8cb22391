package client

import (
	"testing"
	"time"

	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/ohttp"
)

// fixtureProvider serves the ts-mls KeyPackages. They are valid around their
// validation_time ([t-1h, t+30d]), not the wall clock, so the provider runs its
// KeyPackage service on that clock (provider.Config.Clock).
type fixtureProvider struct {
	base   string // through gwHits: http://127.0.0.1:port of a recording proxy
	direct string // the provider itself, for benchmarks
	socket string // ws://127.0.0.1:port/v1/socket
	dir    *directory.Directory
	keys   *ohttp.KeySet
	gwHits *byteRecorder // what reached the provider's HTTP side through base
}

// startFixtureProvider serves a provider whose KeyPackage service validates and
// claims at now; lowStock is its low-stock threshold (0: the default); edits change
// its configuration further.
func startFixtureProvider(t testing.TB, domain string, now time.Time, lowStock int, edits ...func(*provider.Config)) *fixtureProvider {
	t.Helper()
	p := providertest.Start(t, domain, nil, func(c *provider.Config) {
		c.Clock = func() time.Time { return now }
		if lowStock > 0 {
			c.KeyPackages.LowThreshold = lowStock
		}
		for _, edit := range edits {
			edit(c)
		}
	})
	base, rec := tap(t, p.Base)
	return &fixtureProvider{base: base, direct: p.Base, socket: p.Socket, dir: p.Dir, keys: p.Keys, gwHits: rec}
}
