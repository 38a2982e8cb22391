package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/mls"
)

// TestRecipe runs the README's two-provider recipe on fresh ports: bob uploads at B,
// alice discovers and fetches through A's relay, then B's stock is empty.
func TestRecipe(t *testing.T) {
	lnA, lnB := providertest.ListenPair(t)
	a := providertest.Start(t, "a.example", lnA, func(c *provider.Config) {
		c.Peers = []provider.PeerConfig{{Domain: "b.example", URL: "http://" + lnB.Addr().String()}}
	})
	b := providertest.Start(t, "b.example", lnB, func(c *provider.Config) {
		c.Peers = []provider.PeerConfig{{Domain: "a.example", URL: "http://" + lnA.Addr().String()}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, alice, err := a.Dir.AddClient(ctx, "alice", "phone", true)
	if err != nil {
		t.Fatal(err)
	}
	_, bob, err := b.Dir.AddClient(ctx, "bob", "laptop", true)
	if err != nil {
		t.Fatal(err)
	}
	kpFile := filepath.Join(t.TempDir(), "bob-kp.bin")
	get := []string{"get", "-url", a.Socket, "-token", alice, "-peer", "b.example", "-peer-url", b.Base, "-o", kpFile, "mimi://b.example/u/bob"}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"upload", []string{"upload", "-url", b.Socket, "-token", bob}, 0, "uploaded a KeyPackage for mimi://b.example/u/bob"},
		{"get", get, 0, "fetched a KeyPackage of mimi://b.example/u/bob"},
		{"get again: stock empty", get, 1, "no_key_package"},
		{"unknown user", []string{"get", "-url", a.Socket, "-token", alice, "-peer", "b.example", "-peer-url", b.Base, "mimi://b.example/u/nobody"}, 1, "no such user"},
		{"no verb", nil, 2, "usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tc.args, &out, &errb); code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, &out, &errb)
			}
			if !strings.Contains(out.String()+errb.String(), tc.want) {
				t.Fatalf("output lacks %q\nstdout: %s\nstderr: %s", tc.want, &out, &errb)
			}
		})
	}
	raw, err := os.ReadFile(kpFile)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := mls.DecodeKeyPackageMessage(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(kp.LeafNode.Credential.Identity); got != "mimi://b.example/u/bob" {
		t.Fatalf("written KeyPackage names %q", got)
	}
}

// TestExampleConfigs checks that docs/examples/a.json and b.json are accepted as
// `mimids serve -config` reads them (unknown fields refused, then validated) and name
// each other as peers.
func TestExampleConfigs(t *testing.T) {
	cfgs := map[string]provider.Config{}
	for _, name := range []string{"a", "b"} {
		b, err := os.ReadFile(filepath.Join("..", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		cfg := provider.DefaultConfig()
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			t.Fatalf("%s.json: %v", name, err)
		}
		cfg.Gateway = cfg.Gateway.WithDefaults()
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s.json: %v", name, err)
		}
		cfgs[name] = cfg
	}
	a, b := cfgs["a"], cfgs["b"]
	if a.Listen == b.Listen || a.DataDir == b.DataDir || a.Domain == b.Domain {
		t.Fatalf("a and b share a listen address, data dir or domain: %+v %+v", a, b)
	}
	for _, p := range []struct{ from, to provider.Config }{{a, b}, {b, a}} {
		if len(p.from.Peers) != 1 || p.from.Peers[0].Domain != p.to.Domain || p.from.Peers[0].URL != "http://"+p.to.Listen {
			t.Fatalf("%s does not name %s (%s) as its peer: %+v", p.from.Domain, p.to.Domain, p.to.Listen, p.from.Peers)
		}
	}
}
