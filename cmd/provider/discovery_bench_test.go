package provider_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/ohttp"
	"github.com/mimids/mimids/ohttp/bhttp"
	"github.com/mimids/mimids/protocol"
)

// storeRows counts the rows of every table of the provider's store.
func storeRows(t testing.TB, p *providertest.Provider) int64 {
	t.Helper()
	n, err := p.DB.TotalRows(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// gatewayKeys fetches a provider's OHTTP key configurations directly.
func gatewayKeys(t testing.TB, hc *http.Client, base string) *ohttp.Client {
	t.Helper()
	resp, err := hc.Get(base + ohttp.WellKnownGatewayPath)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	oc, err := ohttp.NewClient(keys)
	if err != nil {
		t.Fatal(err)
	}
	return oc
}

// rawDiscover posts one encapsulated discovery of user to the gateway at base, as a
// peer's relay would, and returns the outer status and the inner response (nil unless
// the outer status is 200).
func rawDiscover(t testing.TB, hc *http.Client, oc *ohttp.Client, base, domain, user string) (int, *bhttp.Response) {
	w := protocol.NewWriter(nil)
	w.String(user)
	req := &bhttp.Request{Method: "POST", Scheme: "https", Authority: domain, Path: protocol.InnerDiscoverPath, Content: w.Bytes(),
		Header: bhttp.Fields{{Name: "date", Value: time.Now().UTC().Format(http.TimeFormat)}}}
	return rawInner(t, hc, oc, base, req)
}

func rawInner(t testing.TB, hc *http.Client, oc *ohttp.Client, base string, req *bhttp.Request) (int, *bhttp.Response) {
	enc, cc, err := oc.Encapsulate(req)
	if err != nil {
		t.Error(err)
		return 0, nil
	}
	resp, err := hc.Post(base+ohttp.WellKnownGatewayPath, ohttp.MediaTypeRequest, bytes.NewReader(enc))
	if err != nil {
		t.Error(err)
		return 0, nil
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	inner, err := cc.Decapsulate(out)
	if err != nil {
		t.Error(err)
		return resp.StatusCode, nil
	}
	return resp.StatusCode, inner
}

// BenchmarkDiscoveryFlood measures unauthenticated discovery posted straight to the
// gateway (as a peer's relay does) by parallel requesters, with the per-source limit
// off: the rate the server sustains, and the store rows each discovery leaves.
func BenchmarkDiscoveryFlood(b *testing.B) {
	p := providertest.Start(b, "a.example", nil, func(c *provider.Config) { benchDiscoveryConfig(c) })
	ctx := context.Background()
	if _, _, err := p.Dir.AddClient(ctx, "bob", "phone", true); err != nil {
		b.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	b.Cleanup(hc.CloseIdleConnections)
	oc := gatewayKeys(b, hc, p.Base)
	before := storeRows(b, p)
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if st, inner := rawDiscover(b, hc, oc, p.Base, "a.example", "mimi://a.example/u/bob"); st != 200 || inner == nil || inner.Status != 200 {
				b.Errorf("discover: outer %d", st)
				return
			}
		}
	})
	b.StopTimer()
	rows := storeRows(b, p) - before
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "discoveries/s")
	b.ReportMetric(float64(rows)/float64(b.N), "rows/op")
}

// benchDiscoveryConfig lifts the per-source discovery limit and the replay cache's
// per-source share, to measure what the server sustains.
func benchDiscoveryConfig(c *provider.Config) {
	c.Discovery.RatePerSource = 0
	c.OHTTP.ReplayPerSource = c.OHTTP.ReplayCapacity
}
