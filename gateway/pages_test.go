package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// pageSrc is a partition log for the page cache: Fetch serves log from first on
// (the older entries pruned), counts its reads, can fail, and can hold every read
// until gate is closed.
type pageSrc struct {
	Partitions
	first uint32
	log   []PartitionEntry
	gate  chan struct{} // nil: reads do not wait
	fail  atomic.Bool
	reads atomic.Int64
}

func newPageSrc(first uint32, n int, terminated bool) *pageSrc {
	s := &pageSrc{first: first}
	for i := range n {
		s.log = append(s.log, PartitionEntry{Counter: first + uint32(i), Message: protocol.Message{
			Message: fmt.Appendf(nil, "m%06d", first+uint32(i)), ContentType: mls.ContentTypeApplication}})
	}
	if terminated {
		s.log = append(s.log, PartitionEntry{Counter: first + uint32(n), Terminated: true})
	}
	return s
}

func (s *pageSrc) Fetch(ctx context.Context, _ []byte, after int64, limit int) ([]PartitionEntry, error) {
	s.reads.Add(1)
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if s.fail.Load() {
		return nil, errors.New("store down")
	}
	return logAfter(s.log, after, limit), nil
}

// kept is the number of pages and bytes pc keeps.
func (pc *pageCache) kept() (pages, bytes int) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.lru.Len(), pc.bytes
}

// checkPage fails unless r holds the frames of counters from, from+1, ... (n
// pushes, then the terminated event if ended).
func checkPage(t *testing.T, r pageRead, from uint32, n int, ended bool) {
	t.Helper()
	want := n
	if ended {
		want++
	}
	if len(r.frames) != want {
		t.Fatalf("%d frames, want %d", len(r.frames), want)
	}
	for i, b := range r.frames {
		f, _, err := protocol.Next(b)
		if err != nil {
			t.Fatal(err)
		}
		if r.counter(i) != from+uint32(i) {
			t.Fatalf("frame %d: counter(i) %d, want %d", i, r.counter(i), from+uint32(i))
		}
		switch f := f.(type) {
		case *protocol.Push:
			if i >= n || f.Counter != from+uint32(i) {
				t.Fatalf("frame %d: push of counter %d", i, f.Counter)
			}
		case *protocol.PartitionEvent:
			if !ended || i != n {
				t.Fatalf("frame %d: an event", i)
			}
		default:
			t.Fatalf("frame %d: %T", i, f)
		}
	}
}

// Sockets that want the same page while one reads it wait for that read: one
// store read for all of them, and the whole page stays for the ones after.
func TestPageCacheSharesOneRead(t *testing.T) {
	src := newPageSrc(0, 3*pageFrames, false)
	src.gate = make(chan struct{})
	pc := newPageCache(pageCacheBytes)
	ctx := context.Background()
	const sockets = 50
	var wg sync.WaitGroup
	results := make([]pageRead, sockets)
	errs := make([]error, sockets)
	for i := range sockets {
		wg.Go(func() {
			// Anywhere in the second page, some of them after entries never offered.
			results[i], errs[i] = pc.read(ctx, src, []byte("m"), pageFrames+uint32(i), i%2 == 0)
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for src.reads.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the others come to the read under way
	close(src.gate)
	wg.Wait()
	if n := src.reads.Load(); n != 1 {
		t.Fatalf("%d store reads for one page, want 1", n)
	}
	shared := 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("socket %d: %v", i, errs[i])
		}
		checkPage(t, r, pageFrames, pageFrames, false)
		if !r.whole {
			t.Fatalf("socket %d: the page is not whole", i)
		}
		if r.shared {
			shared++
		} else if r.entries == nil {
			t.Fatalf("the reader has no entries to put in the topic's run")
		}
	}
	if shared != sockets-1 {
		t.Fatalf("%d shared reads, want %d", shared, sockets-1)
	}
	// Kept: a later socket reads no store.
	r, err := pc.read(ctx, src, []byte("m"), 2*pageFrames-1, true)
	if err != nil || !r.shared || src.reads.Load() != 1 {
		t.Fatalf("kept page: err %v shared %v reads %d", err, r.shared, src.reads.Load())
	}
	checkPage(t, r, pageFrames, pageFrames, false)
	if pages, _ := pc.kept(); pages != 1 {
		t.Fatalf("%d pages kept, want 1", pages)
	}
	// Another partition's page of the same counters is another page.
	if _, err := pc.read(ctx, src, []byte("n"), pageFrames, false); err != nil || src.reads.Load() != 2 {
		t.Fatalf("another partition: err %v, reads %d", err, src.reads.Load())
	}
}

// The head of a partition (less than a page, or the terminated event) is never
// kept: its reader uses it; a socket that waited for it uses it too, unless it
// must see entries that were never offered (the read may predate them).
func TestPageCacheHead(t *testing.T) {
	for _, ended := range []bool{false, true} {
		t.Run(fmt.Sprint("terminated=", ended), func(t *testing.T) {
			n, at := 2*pageFrames+10, uint32(2*pageFrames)
			if ended {
				n, at = 2*pageFrames-1, pageFrames // the event is the page's last counter
			}
			src := newPageSrc(0, n, ended)
			pc := newPageCache(pageCacheBytes)
			ctx := context.Background()
			r, err := pc.read(ctx, src, []byte("m"), at+3, true)
			if err != nil || r.whole || r.shared || r.kept {
				t.Fatalf("head: err %v whole %v shared %v kept %v", err, r.whole, r.shared, r.kept)
			}
			if ended {
				checkPage(t, r, pageFrames, pageFrames-1, true)
			} else {
				checkPage(t, r, 2*pageFrames, 10, false)
			}
			if pages, _ := pc.kept(); pages != 0 {
				t.Fatalf("%d pages kept of the head", pages)
			}
			if _, _ = pc.read(ctx, src, []byte("m"), at+3, false); src.reads.Load() != 2 {
				t.Fatalf("%d reads: the head was kept", src.reads.Load())
			}

			// Waiting for another socket's read of the head.
			src.gate = make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() { pc.read(ctx, src, []byte("m"), at, true) })
			deadline := time.Now().Add(5 * time.Second)
			for src.reads.Load() < 3 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			type res struct {
				r    pageRead
				err  error
				must bool
			}
			out := make(chan res, 2)
			for _, must := range []bool{true, false} {
				wg.Go(func() {
					r, err := pc.read(ctx, src, []byte("m"), at+1, must)
					out <- res{r, err, must}
				})
			}
			time.Sleep(20 * time.Millisecond)
			close(src.gate)
			wg.Wait()
			close(out)
			for got := range out {
				switch {
				case got.err != nil:
					t.Fatal(got.err)
				case got.must && got.r.shared:
					t.Fatal("a socket that must read the store used another's read of the head")
				case got.must && len(got.r.frames) == 0:
					t.Fatal("a socket that must read the store did not read the head again")
				case !got.must && !got.r.shared:
					t.Fatal("a socket behind read the head again while another read it")
				}
			}
			if pages, _ := pc.kept(); pages != 0 {
				t.Fatalf("%d pages kept of the head", pages)
			}
		})
	}
}

// A failed read fails its reader, lets the sockets that waited read alone, and
// keeps nothing; the next read tries the store again.
func TestPageCacheReadFails(t *testing.T) {
	src := newPageSrc(0, 2*pageFrames, false)
	src.gate = make(chan struct{})
	src.fail.Store(true)
	pc := newPageCache(pageCacheBytes)
	ctx := context.Background()
	var wg sync.WaitGroup
	var readerErr error
	wg.Go(func() { _, readerErr = pc.read(ctx, src, []byte("m"), 0, false) })
	deadline := time.Now().Add(5 * time.Second)
	for src.reads.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	var waiterErr error
	wg.Go(func() { _, waiterErr = pc.read(ctx, src, []byte("m"), 5, false) })
	time.Sleep(20 * time.Millisecond)
	close(src.gate)
	wg.Wait()
	if readerErr == nil {
		t.Fatal("the reader got no error")
	}
	if waiterErr == nil || src.reads.Load() != 2 { // its own read: the store is still down
		t.Fatalf("waiter: err %v after %d reads, want its own read", waiterErr, src.reads.Load())
	}
	if pages, _ := pc.kept(); pages != 0 {
		t.Fatal("a failed read was kept")
	}
	src.fail.Store(false)
	r, err := pc.read(ctx, src, []byte("m"), 0, false)
	if err != nil || r.shared || !r.kept {
		t.Fatalf("after the store is back: err %v shared %v kept %v", err, r.shared, r.kept)
	}
	checkPage(t, r, 0, pageFrames, false)

	// A socket that gives up waiting returns its context's error; the read goes on
	// for the others, even when its reader gives up.
	src.gate = make(chan struct{})
	before := src.reads.Load()
	deadline = time.Now().Add(5 * time.Second)
	rctx, cancel := context.WithCancel(ctx)
	wg.Go(func() { pc.read(rctx, src, []byte("m"), pageFrames, false) })
	for src.reads.Load() == before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer wcancel()
	if _, err := pc.read(wctx, src, []byte("m"), pageFrames, false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiter that gave up: %v", err)
	}
	cancel()
	close(src.gate)
	wg.Wait()
	reads := src.reads.Load()
	if r, err := pc.read(ctx, src, []byte("m"), pageFrames, false); err != nil || !r.shared || src.reads.Load() != reads {
		t.Fatalf("the read of a reader that gave up was not kept: shared %v err %v", r.shared, err)
	}
}

// A page whose counters are not all there (the older entries were pruned) is not
// kept, and its frames are counted from what the store returned.
func TestPageCachePrunedLog(t *testing.T) {
	src := newPageSrc(pageFrames+40, pageFrames, false) // counters 296..551
	pc := newPageCache(pageCacheBytes)
	r, err := pc.read(context.Background(), src, []byte("m"), pageFrames+3, false)
	if err != nil || r.whole || r.kept {
		t.Fatalf("err %v whole %v kept %v", err, r.whole, r.kept)
	}
	checkPage(t, r, pageFrames+40, pageFrames, false)
	if pages, _ := pc.kept(); pages != 0 {
		t.Fatal("a page with missing counters was kept")
	}
}

// The cache holds at most its budget, dropping the least recently used pages.
func TestPageCacheBudget(t *testing.T) {
	src := newPageSrc(0, 10*pageFrames, false)
	probe := newPageCache(pageCacheBytes)
	ctx := context.Background()
	probe.read(ctx, src, []byte("m"), 0, false)
	_, one := probe.kept()
	pc := newPageCache(3 * one)
	for p := range uint32(3) {
		pc.read(ctx, src, []byte("m"), p*pageFrames, false)
	}
	pc.read(ctx, src, []byte("m"), 0, false)            // page 0 is used again
	pc.read(ctx, src, []byte("m"), 3*pageFrames, false) // page 1 goes
	if pages, bytes := pc.kept(); pages != 3 || bytes > 3*one {
		t.Fatalf("%d pages of %d bytes kept, budget %d", pages, bytes, 3*one)
	}
	reads := src.reads.Load()
	for _, p := range []uint32{0, 2, 3} {
		if r, _ := pc.read(ctx, src, []byte("m"), p*pageFrames, false); !r.shared {
			t.Fatalf("page %d was dropped", p)
		}
	}
	if r, _ := pc.read(ctx, src, []byte("m"), pageFrames, false); r.shared || src.reads.Load() != reads+1 {
		t.Fatal("the least recently used page was kept")
	}
}
