package directory

import (
	"sync"
	"time"
)

// TokenBuckets is a rate limiter with one token bucket per key (a user, a client, a
// token): each key may make burst requests at once and rate requests per second
// sustained. It holds at most maxKeys buckets; a bucket that has refilled is
// indistinguishable from a new one and is dropped when room is needed (at most once a
// second). When every bucket is in use, new keys are refused until one refills. A rate
// of zero or less allows everything. It is safe for concurrent use, and it is the one
// limiter of the provider: own users' sends, the relay's clients, discovery sources, and
// KeyPackage claims per bearer token and per user.
type TokenBuckets struct {
	rate    float64          // Static after construction: tokens per second.
	burst   float64          // Static after construction.
	maxKeys int              // Static after construction.
	now     func() time.Time // Static after construction.

	mu        sync.Mutex         // Guards the fields below.
	buckets   map[string]*bucket // Guarded by mu.
	lastSweep time.Time          // Guarded by mu.
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewTokenBuckets returns a limiter of rate requests per second per key with bursts
// of burst requests, tracking at most maxKeys keys. now nil means time.Now.
func NewTokenBuckets(rate float64, burst, maxKeys int, now func() time.Time) *TokenBuckets {
	if now == nil {
		now = time.Now
	}
	return &TokenBuckets{rate: rate, burst: float64(max(burst, 1)), maxKeys: max(maxKeys, 1), now: now,
		buckets: make(map[string]*bucket)}
}

// Allow takes a token from key's bucket if there is one.
func (t *TokenBuckets) Allow(key string) bool {
	if t.rate <= 0 {
		return true
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buckets[key]
	if b == nil {
		if len(t.buckets) >= t.maxKeys && !t.sweep(now) {
			return false
		}
		b = &bucket{tokens: t.burst, at: now}
		t.buckets[key] = b
	}
	b.tokens = min(t.burst, b.tokens+now.Sub(b.at).Seconds()*t.rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep drops the buckets that have refilled and reports whether there is room for a
// new one. It runs at most once a second.
func (t *TokenBuckets) sweep(now time.Time) bool {
	if now.Sub(t.lastSweep) < time.Second {
		return len(t.buckets) < t.maxKeys
	}
	t.lastSweep = now
	for k, b := range t.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*t.rate >= t.burst {
			delete(t.buckets, k)
		}
	}
	return len(t.buckets) < t.maxKeys
}
