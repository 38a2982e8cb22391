package provider_test

import (
	"context"
	"testing"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

// TestTermsAcrossProviders: A hosts a group with bob of B. A's terms (its ban of
// bob, its per-user rate limit) reach B over the link; B refuses bob's forwarded
// requests while he is banned, and A never sees them; B rate-limits bob's sends
// as A would; A lifts the ban (through its store, as the admin CLI of another
// process does) and bob sends again. A ban of another domain's user is not B's
// business and is not sent there. Bob's report about the hub is listed at B.
func TestTermsAcrossProviders(t *testing.T) {
	const burst = 4
	w := newFedWorldWith(t, func(d string, c *provider.Config) {
		if d == "a.example" {
			c.Hub.RatePerSecond, c.Hub.RateBurst = 0.01, burst // no refill to speak of during the test
		}
	}, "a.example", "b.example")
	a, b := w.ps["a.example"], w.ps["b.example"]
	alice, bob := newBox(), newBox()
	dialUser(t, a, "alice", alice)
	dialUser(t, b, "bob", bob)
	const bobURI = "mimi://b.example/u/bob"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g := groupWithBob(ctx, t, w, alice, bob, mlstest.Options{})
	poll(t, "bob gets the Welcome", func() bool { n, _ := bob.count(g.GroupID); return n == 1 && drained(t, bob) })

	// B learns A's terms when the link comes up, and A learns what B applied.
	poll(t, "B learns A's rate limit", func() bool {
		ht, ok := b.Terms.Of("a.example")
		ta, answered := a.TermsApplied("b.example")
		return ok && ht.Rate == 0.01 && ht.Burst == burst && answered && ta.RateMilli == 10 && ta.Burst == burst
	})
	// And B's terms (it hosts nothing here, but is a hub too) reach A.
	poll(t, "A learns B's terms", func() bool {
		_, ok := a.Terms.Of("b.example")
		_, answered := b.TermsApplied("a.example")
		return ok && answered
	})
	send := func() (uint32, error) {
		app, err := g.RandomApplication(60)
		if err != nil {
			t.Fatal(err)
		}
		return bob.c.Send(ctx, &protocol.SendRequest{Message: app, PartitionKey: g.PartitionKey})
	}
	if c, err := send(); err != nil || c != 0 {
		t.Fatalf("bob's first send: %d, %v", c, err)
	}

	// A bans bob, and (not B's business) a user of another domain.
	if err := a.Policy.Ban(ctx, bobURI, "spam"); err != nil {
		t.Fatal(err)
	}
	if err := a.Policy.Ban(ctx, "mimi://c.example/u/dave", "spam"); err != nil {
		t.Fatal(err)
	}
	poll(t, "B learns the ban", func() bool { ht, _ := b.Terms.Of("a.example"); return ht.Banned[bobURI] })
	if ta, _ := a.TermsApplied("b.example"); ta.Ignored != 0 {
		t.Errorf("B ignored %d entries: A sent bans of another domain's users", ta.Ignored)
	}
	appliedAtA := a.Federation.Stats().Applied
	if _, err := send(); client.ErrorCode(err) != protocol.CodePolicy {
		t.Fatalf("banned bob's send through B: %v, want policy", err)
	}
	if _, err := bob.c.Receive(ctx, g.PartitionKey, 0); client.ErrorCode(err) != protocol.CodePolicy {
		t.Fatalf("banned bob's receive through B: %v, want policy", err)
	}
	if got := a.Federation.Stats().Applied; got != appliedAtA {
		t.Fatalf("A applied %d envelopes from B for a banned user; B should have refused them", got-appliedAtA)
	}

	// A lifts the ban through its store, as `mimids ban remove` in another process.
	if removed, err := a.DB.RemoveBan(ctx, bobURI); err != nil || !removed {
		t.Fatalf("unban: %v %v", removed, err)
	}
	poll(t, "B learns the ban is lifted", func() bool { ht, _ := b.Terms.Of("a.example"); return !ht.Banned[bobURI] })
	// Bob has burst-1 sends left of A's rate limit, enforced by B: A applies
	// exactly those.
	appliedAtA = a.Federation.Stats().Applied
	for i := 1; i < burst; i++ {
		if c, err := send(); err != nil || c != uint32(i) {
			t.Fatalf("bob's send %d after the ban: %d, %v", i, c, err)
		}
	}
	if _, err := send(); client.ErrorCode(err) != protocol.CodeRateLimited {
		t.Fatalf("bob's send over A's rate limit: %v, want rate_limited", err)
	}
	if got := a.Federation.Stats().Applied - appliedAtA; got != burst-1 {
		t.Fatalf("A applied %d of bob's sends, want %d: B let an over-rate send through", got, burst-1)
	}

	// Bob reports the hub; B's admin sees the report.
	if _, err := bob.c.Report(ctx, &protocol.Report{Kind: protocol.ReportHub, GroupID: g.GroupID,
		Subject: []byte("a.example"), Reason: "does not keep its terms"}); err != nil {
		t.Fatal(err)
	}
	rs, err := b.Policy.ListReports(ctx, 10)
	if err != nil || len(rs) != 1 || rs[0].Kind != protocol.ReportHub || string(rs[0].Subject) != "a.example" || rs[0].ReporterUser != bobURI {
		t.Fatalf("reports at B: %+v, %v", rs, err)
	}
	if rs, _ := a.Policy.ListReports(ctx, 10); len(rs) != 0 {
		t.Fatalf("bob's report reached A: %+v", rs)
	}

	// A hub that sends terms for users of another domain: B ignores those entries,
	// says so in its answer, and logs it once.
	for range 2 {
		hostile, _ := (&protocol.Terms{Banned: []string{"mimi://c.example/u/carol", "mimi://b.example/u/eve"}}).MarshalBinary()
		if _, err := a.Federation.Call(ctx, "b.example", protocol.EnvelopeTerms, hostile); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, "A learns B ignored the foreign entry", func() bool { ta, _ := a.TermsApplied("b.example"); return ta.Ignored == 1 && ta.Banned == 1 })
	if ht, _ := b.Terms.Of("a.example"); ht.Banned["mimi://c.example/u/carol"] || !ht.Banned["mimi://b.example/u/eve"] {
		t.Fatalf("B's terms of A: %+v", ht)
	}
	if n := w.logs["b.example"].count("terms for users of another domain"); n != 1 {
		t.Fatalf("B logged the foreign entries %d times, want once", n)
	}
}
