package gateway

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// Sockets that fell behind a topic's run of recent frames (recentFrames) catch up
// from the store. Each used to read its own page from where it stood, so a node
// whose thousand sockets fell behind (it was short of CPU for a moment) read the
// store a thousand times per page of lag, encoded every frame a thousand times, and
// fell further behind for it. Reads behind the run now go by aligned pages of
// pageFrames counters, shared by every socket of the gateway: one socket reads a
// page while the others that want it wait, and a whole page (every counter of it is
// committed, so it never changes) stays in a cache bounded in bytes for the sockets
// that come to it later. A page at the head of the partition (fewer entries than a
// page, or the terminated event) is never kept: its reader uses it as its own read.

// pageFrames is the number of counters in a page; pages start at multiples of it.
const pageFrames = 256

// maxPageBytes bounds the frames of one kept page; a larger page is used by its
// reader only.
const maxPageBytes = 4 << 20

// pageCacheBytes bounds the frames of all pages a gateway keeps.
const pageCacheBytes = 32 << 20

// pageReadTimeout bounds one page read, which other sockets may be waiting for.
const pageReadTimeout = 10 * time.Second

type pageKey struct {
	masked string
	first  uint32
}

// page is one page of a partition's push frames, being read or kept.
type page struct {
	key   pageKey
	ready chan struct{} // closed once the read is over
	// Set before ready is closed, then read-only.
	got   pageRead      // what the read found (nothing when it failed)
	kept  bool          // got is a whole page, small enough to keep
	bytes int           // of got.frames
	elem  *list.Element // in pageCache.lru; nil while being read. Guarded by pageCache.mu.
}

// pageCache holds a gateway's whole pages, least recently used first out.
type pageCache struct {
	// Static after construction.
	max int // bytes of frames kept

	mu    sync.Mutex
	pages map[pageKey]*page // being read or kept; Guarded by mu.
	lru   list.List         // of *page, most recently used at the front; Guarded by mu.
	bytes int               // Guarded by mu.
}

func newPageCache(max int) *pageCache {
	return &pageCache{max: max, pages: make(map[pageKey]*page)}
}

// pageRead is what pageCache.read found.
type pageRead struct {
	first   uint32           // the counter of frames[0]
	frames  [][]byte         // push frames (the terminated event last, if read)
	entries []PartitionEntry // what the store returned; only for the socket that read it
	whole   bool             // a whole page: more entries follow it
	shared  bool             // read by another socket, or kept from earlier
	kept    bool             // read by this socket, and now kept for the others
}

// read returns the page holding counter next of partition masked: kept, read by
// another socket meanwhile, or read from src now (and kept if whole). The caller
// reads the page again, alone, when another socket's read of it failed, or found
// less than a whole page and mustRead is set: a read that was under way when the
// caller learned of entries never offered may predate them (a whole page holds
// only committed entries, which never change).
func (pc *pageCache) read(ctx context.Context, src Partitions, masked []byte, next uint32, mustRead bool) (pageRead, error) {
	key := pageKey{string(masked), next - next%pageFrames}
	pc.mu.Lock()
	p := pc.pages[key]
	if p == nil {
		p = &page{key: key, ready: make(chan struct{})}
		pc.pages[key] = p
		pc.mu.Unlock()
		// The read outlives the caller's ctx: others may wait for it.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pageReadTimeout)
		r, err := load(lctx, src, masked, p)
		cancel()
		close(p.ready)
		pc.mu.Lock()
		if p.kept {
			p.elem = pc.lru.PushFront(p)
			pc.bytes += p.bytes
			pc.evict()
		} else {
			delete(pc.pages, key)
		}
		pc.mu.Unlock()
		r.kept = p.kept
		return r, err
	}
	if p.elem != nil {
		pc.lru.MoveToFront(p.elem)
	}
	pc.mu.Unlock()
	select {
	case <-p.ready:
	case <-ctx.Done():
		return pageRead{}, ctx.Err()
	}
	if p.got.frames != nil && (p.kept || !mustRead) {
		r := p.got
		r.shared = true
		return r, nil
	}
	return load(ctx, src, masked, &page{key: key})
}

// load reads p from the store into p.got, setting p.kept when it is whole and
// small enough to keep.
func load(ctx context.Context, src Partitions, masked []byte, p *page) (pageRead, error) {
	es, err := src.Fetch(ctx, masked, int64(p.key.first)-1, pageFrames)
	if err != nil {
		return pageRead{}, err
	}
	r := pageRead{entries: es, frames: make([][]byte, len(es))}
	if len(es) > 0 {
		r.first = es[0].Counter
	}
	r.whole = len(es) == pageFrames && r.first == p.key.first
	bytes, consecutive := 0, true
	for i, e := range es {
		f := encodePartitionEntry(masked, e)
		r.frames[i] = f
		bytes += len(f)
		if f == nil || e.Counter != r.first+uint32(i) {
			consecutive = false
		}
		if e.Terminated {
			r.whole = false
		}
	}
	r.whole = r.whole && consecutive
	if consecutive { // others may use it, counting from r.first (pageRead.counter)
		p.got = pageRead{first: r.first, frames: r.frames, whole: r.whole}
		p.kept, p.bytes = r.whole && bytes <= maxPageBytes, bytes
	}
	return r, nil
}

// counter is the counter of r.frames[i].
func (r *pageRead) counter(i int) uint32 {
	if r.entries != nil {
		return r.entries[i].Counter
	}
	return r.first + uint32(i)
}

// evict drops the least recently used pages past the budget. pc.mu is held.
func (pc *pageCache) evict() {
	for pc.bytes > pc.max && pc.lru.Len() > 0 {
		p := pc.lru.Remove(pc.lru.Back()).(*page)
		p.elem = nil
		pc.bytes -= p.bytes
		delete(pc.pages, p.key)
	}
}
