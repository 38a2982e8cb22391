package follower

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/mimids/mimids/protocol"
)

// countLimiter allows n requests per key.
type countLimiter struct {
	mu   sync.Mutex
	n    int
	used map[string]int
}

func (c *countLimiter) Allow(k string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.used[k]++
	return c.used[k] <= c.n
}

// TestTerms: a hub's bans of this domain's users and its rate limit apply to that
// hub only; foreign entries are ignored, logged once, and counted in the answer;
// new terms replace the old ones.
func TestTerms(t *testing.T) {
	var logs bytes.Buffer
	book := NewTerms("b.example", func(rate float64, burst int) Limiter {
		return &countLimiter{n: burst, used: map[string]int{}}
	}, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := context.Background()
	bob, carol := "mimi://b.example/u/bob", "mimi://b.example/u/carol"
	body, _ := (&protocol.Terms{RateMilli: 1000, Burst: 2,
		Banned: []string{bob, "mimi://c.example/u/dave", "mimi://b.example/d/x/1"}}).MarshalBinary()
	for range 2 {
		out, err := book.Apply(ctx, "a.example", body)
		if err != nil {
			t.Fatal(err)
		}
		var a protocol.TermsApplied
		if err := a.UnmarshalBinary(out); err != nil || a != (protocol.TermsApplied{RateMilli: 1000, Burst: 2, Banned: 1, Ignored: 2}) {
			t.Fatalf("applied %+v, %v", a, err)
		}
	}
	if n := strings.Count(logs.String(), "users of another domain"); n != 1 {
		t.Fatalf("foreign entries logged %d times, want once:\n%s", n, &logs)
	}
	for _, c := range []struct {
		hub, user string
		m         protocol.Method
		want      error
	}{
		{"a.example", "mimi://b.example/d/bob/7", protocol.MethodReceive, ErrBannedByHub},
		{"a.example", bob, protocol.MethodSend, ErrBannedByHub},
		{"z.example", bob, protocol.MethodSend, nil},
		{"a.example", carol, protocol.MethodSend, nil},
		{"a.example", carol, protocol.MethodExternalJoin, nil},
		{"a.example", carol, protocol.MethodReceive, nil}, // receives take no token
		{"a.example", carol, protocol.MethodSend, ErrRateLimitedByHub},
	} {
		if err := book.Check(c.hub, c.m, c.user); !errors.Is(err, c.want) {
			t.Errorf("%s %s at %s: %v, want %v", c.m, c.user, c.hub, err, c.want)
		}
	}
	// New bans with the same limit keep the buckets: carol stays limited.
	same, _ := (&protocol.Terms{RateMilli: 1000, Burst: 2}).MarshalBinary()
	if _, err := book.Apply(ctx, "a.example", same); err != nil {
		t.Fatal(err)
	}
	if err := book.Check("a.example", protocol.MethodSend, carol); !errors.Is(err, ErrRateLimitedByHub) {
		t.Fatalf("carol after new terms with the same limit: %v, want still rate limited", err)
	}
	lifted, _ := (&protocol.Terms{}).MarshalBinary()
	if _, err := book.Apply(ctx, "a.example", lifted); err != nil {
		t.Fatal(err)
	}
	if err := book.Check("a.example", protocol.MethodSend, bob); err != nil {
		t.Fatalf("after the ban is lifted: %v", err)
	}
	if _, err := book.Apply(ctx, "a.example", []byte{1}); !errors.Is(err, protocol.ErrMalformed) {
		t.Fatalf("garbage terms: %v", err)
	}
	if ht, ok := book.Of("a.example"); !ok || len(ht.Banned) != 0 || ht.Rate != 0 {
		t.Fatalf("terms after garbage: %+v %v, want the lifted ones kept", ht, ok)
	}
}
