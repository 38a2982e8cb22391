package web_test

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/federation/fedcert"
)

func TestPeersPage(t *testing.T) {
	certs := t.TempDir()
	ca, err := fedcert.NewCA("test", fedcert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := ca.Issue("a.example", fedcert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := iss.Write(certs, "a.example"); err != nil {
		t.Fatal(err)
	}
	p := providertest.Start(t, "a.example", nil, func(c *provider.Config) {
		c.Federation.CertFile = filepath.Join(certs, fedcert.CertFile("a.example"))
		c.Federation.KeyFile = filepath.Join(certs, fedcert.KeyFile("a.example"))
	})
	a := loggedIn(t, p, p.AdminToken)
	ctx := context.Background()
	pin := strings.Repeat("ab", 32)
	for _, c := range []struct {
		form url.Values
		says string
	}{
		{url.Values{"domain": {"b.example"}, "url": {"wss://127.0.0.1:1"}}, "exactly one"},
		{url.Values{"domain": {"b.example"}, "url": {"wss://127.0.0.1:1"}, "pin": {"abc"}}, "pin"},
		{url.Values{"domain": {"b.example"}, "url": {"wss://127.0.0.1:1"}, "ca": {"not pem"}}, "CA bundle"},
		{url.Values{"domain": {"b.example"}, "url": {"ftp://x"}, "pin": {pin}}, "bad peer"},
		{url.Values{"domain": {"a.example"}, "url": {"wss://127.0.0.1:1"}, "pin": {pin}}, "bad peer"},
	} {
		if code, body := a.change("/dashboard/peers", c.form); code != http.StatusBadRequest || !strings.Contains(body, c.says) {
			t.Errorf("add %v: %d, want 400 saying %q", c.form, code, c.says)
		}
	}
	if ps, _ := p.DB.Peers(ctx); len(ps) != 0 {
		t.Fatalf("bad input added peers: %+v", ps)
	}
	if code, body := a.change("/dashboard/peers", url.Values{"domain": {"b.example"}, "url": {"wss://127.0.0.1:1"}, "pin": {pin}}); code != http.StatusSeeOther {
		t.Fatalf("add: %d %s", code, body)
	}
	code, body := a.get("/dashboard/peers")
	if code != http.StatusOK || !strings.Contains(body, "b.example") || !strings.Contains(body, "wss://127.0.0.1:1") {
		t.Fatalf("peers page: %d", code)
	}
	if code, _ := a.change("/dashboard/peers/remove", url.Values{"domain": {"b.example"}}); code != http.StatusBadRequest {
		t.Fatalf("remove without confirmation: %d", code)
	}
	if code, _ := a.change("/dashboard/peers/remove", url.Values{"domain": {"b.example"}, "confirm": {"yes"}}); code != http.StatusSeeOther {
		t.Fatalf("remove: %d", code)
	}
	if code, _ := a.change("/dashboard/peers/remove", url.Values{"domain": {"b.example"}, "confirm": {"yes"}}); code != http.StatusNotFound {
		t.Fatalf("remove again: %d", code)
	}
	if ps, _ := p.DB.Peers(ctx); len(ps) != 0 {
		t.Fatalf("peers left: %+v", ps)
	}
	es, _ := directory.NewAdmins(p.Dir, p.DB).Audit(ctx, 0, 10)
	if len(es) != 2 || es[0].Action != "peer.remove" || es[1].Action != "peer.add" {
		t.Fatalf("audit: %+v", es)
	}
}
