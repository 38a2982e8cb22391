package ohttp

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"time"
)

// ReplayCache remembers the encapsulated keys (enc) of accepted requests.
// Add records enc and fails with ErrReplay when it was already recorded and
// is still remembered, or with ErrReplayCacheFull when it cannot record it.
// A gateway spread over several processes plugs a shared implementation in
// GatewayConfig.Replay.
type ReplayCache interface {
	Add(enc []byte) error
}

// MemoryReplayCache is a ReplayCache in memory, bounded in time and size:
// each enc is remembered for the window after it was added, and at most
// capacity encs are remembered at once. When full of entries still within
// the window it refuses new ones (ErrReplayCacheFull) rather than forget
// some early and let their replays through. It keeps 16 bytes of
// SHA-256(enc) per entry. It is safe for concurrent use.
type MemoryReplayCache struct {
	window   time.Duration // Static after construction.
	capacity int           // Static after construction.

	mu   sync.Mutex            // Guards the fields below.
	seen map[[16]byte]struct{} // Guarded by mu.
	ring []replayEntry         // Guarded by mu: a FIFO of seen, oldest at head.
	head int                   // Guarded by mu.
	n    int                   // Guarded by mu: entries in ring.
}

type replayEntry struct {
	id [16]byte
	at time.Time
}

// NewMemoryReplayCache returns a cache that remembers each enc for window,
// and at most capacity of them.
func NewMemoryReplayCache(window time.Duration, capacity int) *MemoryReplayCache {
	return &MemoryReplayCache{window: window, capacity: max(capacity, 1), seen: make(map[[16]byte]struct{})}
}

// Window returns how long an enc is remembered.
func (c *MemoryReplayCache) Window() time.Duration { return c.window }

// Len returns the number of encs remembered.
func (c *MemoryReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Add implements ReplayCache.
func (c *MemoryReplayCache) Add(enc []byte) error {
	sum := sha256.Sum256(enc)
	id := [16]byte(sum[:16])
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for c.n > 0 && !now.Before(c.ring[c.head].at.Add(c.window)) {
		delete(c.seen, c.ring[c.head].id)
		c.ring[c.head] = replayEntry{}
		c.head = (c.head + 1) % len(c.ring)
		c.n--
	}
	if _, ok := c.seen[id]; ok {
		return ErrReplay
	}
	if c.n >= c.capacity {
		return fmt.Errorf("%w: %d requests within %v", ErrReplayCacheFull, c.n, c.window)
	}
	if c.n == len(c.ring) {
		c.grow()
	}
	c.ring[(c.head+c.n)%len(c.ring)] = replayEntry{id: id, at: now}
	c.n++
	c.seen[id] = struct{}{}
	return nil
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
