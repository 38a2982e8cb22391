package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestCertAndPeerVerbs runs the cert and peer verbs in process: a test federation's
// CA and certificates, then the allow-list of a store.
func TestCertAndPeerVerbs(t *testing.T) {
	fed, data := filepath.Join(t.TempDir(), "fed"), t.TempDir()
	must := func(args ...string) string {
		t.Helper()
		code, out, errs := mimids(t, args...)
		if code != 0 {
			t.Fatalf("%q: exit %d: %s", args, code, errs)
		}
		return out
	}
	must("cert", "ca", "-out", fed)
	for _, f := range []string{"ca.pem", "ca-key.pem"} {
		if _, err := os.Stat(filepath.Join(fed, f)); err != nil {
			t.Fatal(err)
		}
	}
	out := must("cert", "issue", "-ca", fed, "-out", fed, "-key", "ed25519", "b.example")
	if !strings.Contains(out, filepath.Join(fed, "b.example.pem")) {
		t.Fatalf("cert issue printed %q", out)
	}
	pin := regexp.MustCompile(`pin: +([0-9a-f]{64})`).FindStringSubmatch(must("cert", "issue", "-self-signed", "-out", fed, "c.example"))
	if pin == nil {
		t.Fatal("cert issue printed no pin")
	}
	store := []string{"-data", data, "-domain", "a.example"}
	peer := func(verb string, args ...string) []string {
		return append(append([]string{"peer", verb}, store...), args...)
	}
	must(peer("add", "-url", "wss://127.0.0.1:9443", "-ca", filepath.Join(fed, "ca.pem"), "b.example")...)
	must(peer("add", "-url", "wss://127.0.0.1:9444", "-pin", pin[1], "c.example")...)
	list := must(peer("list")...)
	for _, want := range []string{"b.example\twss://127.0.0.1:9443\tCA mimids test federation CA", "c.example\twss://127.0.0.1:9444\tpin " + pin[1],
		"state unknown", "queue 0, lag 0s"} {
		if !strings.Contains(list, want) {
			t.Errorf("peer list lacks %q:\n%s", want, list)
		}
	}
	refused := []struct {
		args []string
		want string
	}{
		{peer("add", "-url", "wss://h:1", "-ca", filepath.Join(fed, "ca.pem"), "-pin", pin[1], "d.example"), "exactly one"},
		{peer("add", "-url", "wss://h:1", "d.example"), "exactly one"},
		{peer("add", "-url", "https://h:1", "-pin", pin[1], "d.example"), "wss://host:port"},
		{peer("add", "-url", "wss://h:1", "-pin", "abc", "d.example"), "SHA-256"},
		{peer("add", "-url", "wss://h:1", "-pin", pin[1], "a.example"), "own domain"},
		{peer("add", "-url", "wss://h:1", "-ca", filepath.Join(fed, "ca-key.pem"), "d.example"), "no PEM certificate"},
		{peer("remove", "x.example"), "unknown peer"},
		{[]string{"cert", "issue", "-out", fed, "e.example"}, "exactly one of -ca"},
		{[]string{"cert", "ca", "-out", fed}, "exists"},
	}
	for _, tc := range refused {
		code, _, errs := mimids(t, tc.args...)
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want a failure with %q", tc.args, code, errs, tc.want)
		}
	}
	if out := must(peer("remove", "b.example")...); !strings.Contains(out, "removed peer b.example") {
		t.Fatalf("peer remove printed %q", out)
	}
	if list := must(peer("list")...); strings.Contains(list, "b.example") || !strings.Contains(list, "c.example") {
		t.Fatalf("after remove:\n%s", list)
	}
	for _, args := range [][]string{{"peer", "-h"}, {"cert", "-h"}, {"peer", "add", "-h"}, {"cert", "issue", "-h"}} {
		if code, out, _ := mimids(t, args...); code != 0 || !strings.HasPrefix(out, "usage: mimids "+args[0]) {
			t.Errorf("%q: exit %d, %q", args, code, out)
		}
	}
}

// TestFederationProcesses starts two providers as separate `mimids serve`
// processes with a test federation made by `mimids cert`, puts each on the other's
// allow-list with `mimids peer add`, and reads the link's state with `mimids peer
// list` from the store the servers record it in: up on both sides, then away on a
// once b is killed.
func TestFederationProcesses(t *testing.T) {
	dir := t.TempDir()
	fed := filepath.Join(dir, "fed")
	if code, _, errs := mimids(t, "cert", "ca", "-out", fed); code != 0 {
		t.Fatal(errs)
	}
	type side struct{ domain, cfg, data, fedAddr, httpAddr string }
	sides := []*side{{domain: "a.example"}, {domain: "b.example"}}
	for _, s := range sides {
		if code, _, errs := mimids(t, "cert", "issue", "-ca", fed, "-out", fed, s.domain); code != 0 {
			t.Fatal(errs)
		}
		s.data, s.fedAddr, s.httpAddr = filepath.Join(dir, s.domain), freeAddr(t), freeAddr(t)
		cfg := map[string]any{"domain": s.domain, "data_dir": s.data, "store": map[string]any{"synchronous": "normal"},
			"federation": map[string]any{"listen": s.fedAddr, "cert_file": filepath.Join(fed, s.domain+".pem"),
				"key_file": filepath.Join(fed, s.domain+"-key.pem"), "min_backoff": "50ms", "max_backoff": "500ms", "peer_refresh": "200ms"}}
		b, _ := json.Marshal(cfg)
		s.cfg = filepath.Join(dir, s.domain+".json")
		if err := os.WriteFile(s.cfg, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range sides {
		other := sides[1-i]
		if code, _, errs := mimids(t, "peer", "add", "-config", s.cfg, "-url", "wss://"+other.fedAddr, "-ca", filepath.Join(fed, "ca.pem"), other.domain); code != 0 {
			t.Fatal(errs)
		}
	}
	procs := make([]*serverProc, 2)
	for i, s := range sides {
		procs[i] = startServer(t, s.data, s.httpAddr, "-config", s.cfg, "-domain", s.domain)
	}
	list := func(s *side) string {
		code, out, errs := mimids(t, "peer", "list", "-config", s.cfg)
		if code != 0 {
			t.Fatalf("peer list: %s", errs)
		}
		return out
	}
	waitFor := func(s *side, want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for out := list(s); !strings.Contains(out, want); out = list(s) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: peer list never showed %q:\n%s", s.domain, want, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor(sides[0], "up since")
	waitFor(sides[1], "up since")
	procs[1].kill()
	waitFor(sides[0], "away since")
	t.Logf("a after b was killed:\n%s", list(sides[0]))
}
