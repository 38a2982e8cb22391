package ohttp

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// ReplayCache remembers the encapsulated keys (enc) of accepted requests.
// Add records enc for the source of the request (see RequestSource) and
// fails with ErrReplay when enc was already recorded, for any source, and is
// still remembered, or with ErrReplayCacheFull (ErrReplaySourceFull when
// only this source is over its share) when it cannot record it. A gateway
// spread over several processes plugs a shared implementation in
// GatewayConfig.Replay.
type ReplayCache interface {
	Add(source string, enc []byte) error
}

// MemoryReplayCache is a ReplayCache in memory, bounded in time and size:
// each enc is remembered for the window after it was added, at most
// capacity encs are remembered at once, and at most perSource of them for
// one source. When full of entries still within the window it refuses new
// ones (ErrReplayCacheFull, or ErrReplaySourceFull for a source over its
// share) rather than forget some early and let their replays through: a
// source that floods the gateway is refused before the others are. It
// keeps 16 bytes of SHA-256(enc) and a pointer to the source per entry. It
// is safe for concurrent use.
type MemoryReplayCache struct {
	window    time.Duration // Static after construction.
	capacity  int           // Static after construction.
	perSource int           // Static after construction.

	mu      sync.Mutex               // Guards the fields below.
	seen    map[[16]byte]struct{}    // Guarded by mu.
	ring    []replayEntry            // Guarded by mu: a FIFO of seen, oldest at head.
	head    int                      // Guarded by mu.
	n       int                      // Guarded by mu: entries in ring.
	sources map[string]*replaySource // Guarded by mu: sources with entries.
}

type replayEntry struct {
	id  [16]byte
	at  time.Time
	src *replaySource
}

// replaySource counts one source's entries; entries share it, so the
// source's name is kept once.
type replaySource struct {
	name string
	n    int
}

// NewMemoryReplayCache returns a cache that remembers each enc for window,
// at most capacity of them, and at most perSource of them for one source
// (0 or more than capacity: capacity).
func NewMemoryReplayCache(window time.Duration, capacity, perSource int) *MemoryReplayCache {
	capacity = max(capacity, 1)
	if perSource <= 0 || perSource > capacity {
		perSource = capacity
	}
	return &MemoryReplayCache{window: window, capacity: capacity, perSource: perSource,
		seen: make(map[[16]byte]struct{}), sources: make(map[string]*replaySource)}
}

// Window returns how long an enc is remembered.
func (c *MemoryReplayCache) Window() time.Duration { return c.window }

// Len returns the number of encs remembered.
func (c *MemoryReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Sources returns the number of sources with encs remembered.
func (c *MemoryReplayCache) Sources() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sources)
}

// Add implements ReplayCache.
func (c *MemoryReplayCache) Add(source string, enc []byte) error {
	sum := sha256.Sum256(enc)
	id := [16]byte(sum[:16])
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for c.n > 0 && !now.Before(c.ring[c.head].at.Add(c.window)) {
		c.drop()
	}
	if _, ok := c.seen[id]; ok {
		return ErrReplay
	}
	if c.n >= c.capacity {
		return fmt.Errorf("%w: %d requests within %v", ErrReplayCacheFull, c.n, c.window)
	}
	src := c.sources[source]
	if src != nil && src.n >= c.perSource {
		return fmt.Errorf("%w: %d requests within %v", ErrReplaySourceFull, src.n, c.window)
	}
	if src == nil {
		src = &replaySource{name: source}
		c.sources[source] = src
	}
	if c.n == len(c.ring) {
		c.grow()
	}
	c.ring[(c.head+c.n)%len(c.ring)] = replayEntry{id: id, at: now, src: src}
	c.n++
	src.n++
	c.seen[id] = struct{}{}
	return nil
}

// drop forgets the oldest entry.
func (c *MemoryReplayCache) drop() {
	e := c.ring[c.head]
	delete(c.seen, e.id)
	if e.src.n--; e.src.n == 0 {
		delete(c.sources, e.src.name)
	}
	c.ring[c.head] = replayEntry{}
	c.head = (c.head + 1) % len(c.ring)
	c.n--
}

// grow doubles the ring (up to capacity), keeping FIFO order.
func (c *MemoryReplayCache) grow() {
	size := min(max(2*len(c.ring), 64), c.capacity)
	ring := make([]replayEntry, size)
	for i := range c.n {
		ring[i] = c.ring[(c.head+i)%len(c.ring)]
	}
	c.ring, c.head = ring, 0
}

type sourceKey struct{}

// WithSource returns a context under which the gateway attributes the
// requests it serves to source instead of the client's address: a relay in
// the same process names the client it relays for (Relay does). A context
// value never crosses HTTP, so a remote party cannot choose its source.
func WithSource(ctx context.Context, source string) context.Context {
	return context.WithValue(ctx, sourceKey{}, source)
}

// Source returns the source of the request being served under ctx, as the
// gateway attributed it (handlers see it), or "" if none.
func Source(ctx context.Context) string {
	s, _ := ctx.Value(sourceKey{}).(string)
	return s
}

// RequestSource names the source of an outer request: the name WithSource
// gave its context, else "addr:" and the client's IP address, an IPv6
// address by its /64 prefix (one host's addresses are one source). Behind a
// reverse proxy every request has the proxy's address.
func RequestSource(r *http.Request) string {
	if s := Source(r.Context()); s != "" {
		return s
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return "addr:" + host
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return "addr:" + p.String()
	}
	return "addr:" + a.String()
}
