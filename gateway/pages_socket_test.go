package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// logParts is one partition's stored log, with no live traffic: subscribers catch
// up from the store alone. Fetch counts its reads.
type logParts struct {
	log   []gateway.PartitionEntry
	reads atomic.Int64
}

func (p *logParts) Subscribe([]byte, gateway.PartitionSink) func() { return func() {} }

func (p *logParts) Masked(_ context.Context, pk []byte) ([]byte, error) { return pk, nil }

func (p *logParts) Fetch(_ context.Context, _ []byte, after int64, limit int) ([]gateway.PartitionEntry, error) {
	p.reads.Add(1)
	var out []gateway.PartitionEntry
	for _, e := range p.log[min(int(after+1), len(p.log)):] {
		if len(out) == limit {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

// Sockets that catch up on a partition's history share its pages: each page is
// read from the store once for all of them, also for the sockets that come later,
// when the topic's run of recent frames no longer holds the older pages (before,
// every socket read every page it did not find in the run); every socket still
// gets every entry once, in order.
func TestSocketsShareCatchUpPages(t *testing.T) {
	const pages, head = 24, 184
	const entries = pages*256 + head
	parts := &logParts{}
	for c := range uint32(entries) {
		parts.log = append(parts.log, gateway.PartitionEntry{Counter: c, Message: protocol.Message{
			Message: fmt.Appendf(nil, "message %d", c), ContentType: mls.ContentTypeApplication}})
	}
	// Small queues: a page takes a socket four rounds.
	e := newEnvParts(t, gateway.Config{SendQueueMessages: 64, ReplayBatch: 64}, parts)
	sub := protocol.NewWriter(nil)
	sub.Opaque([]byte("partition"))
	sub.U32(0)
	users := 0
	// catchUp subscribes n sockets at once from counter 0 and reads every entry on each.
	catchUp := func(n int) {
		t.Helper()
		conns := make([]*rawConn, n)
		for i := range conns {
			users++
			_, tok := e.addClient(fmt.Sprintf("u%d", users), "phone")
			conns[i], _ = e.login(tok)
		}
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for i, rc := range conns {
			rc.send(&protocol.Request{RequestID: 2, Method: protocol.MethodSubscribe, Body: sub.Bytes()})
			wg.Go(func() {
				next, answered := uint32(0), false
				deadline := time.Now().Add(30 * time.Second)
				for next < entries || !answered {
					f, err := rc.read(time.Until(deadline))
					if err != nil {
						errs <- fmt.Errorf("socket %d at counter %d: %v", i, next, err)
						return
					}
					switch f := f.(type) {
					case *protocol.Response:
						answered = true
					case *protocol.Push:
						want, _ := parts.log[min(next, entries-1)].Message.MarshalBinary()
						if f.Counter != next || !bytes.Equal(f.Message, want) {
							errs <- fmt.Errorf("socket %d: push of counter %d, want %d", i, f.Counter, next)
							return
						}
						next++
					default:
						errs <- fmt.Errorf("socket %d: %T", i, f)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for i, rc := range conns { // no entry twice
			if f, err := rc.read(50 * time.Millisecond); err == nil {
				t.Fatalf("socket %d: %T after the last entry", i, f)
			}
		}
	}
	const name = "mimids_partition_catchups_total"
	stats := func(phase string) (pageReads, socketReads, pageHits float64) {
		pageReads, pageHits = e.labeled(name, "source", "page_read"), e.labeled(name, "source", "page")
		socketReads = e.labeled(name, "source", "socket_read")
		t.Logf("%s: %d store reads: %.0f shared pages, %.0f by one socket; catch-ups from shared pages %.0f, from recent frames %.0f",
			phase, parts.reads.Load(), pageReads, socketReads, pageHits, e.labeled(name, "source", "recent"))
		if int64(pageReads+socketReads) != parts.reads.Load() {
			t.Errorf("counters %.0f+%.0f, store reads %d", pageReads, socketReads, parts.reads.Load())
		}
		return pageReads, socketReads, pageHits
	}

	// Ten at once.
	const sockets = 10
	catchUp(sockets)
	pageReads, socketReads, hits := stats("together")
	if pageReads != pages {
		t.Errorf("%.0f pages read, want each of the %d whole pages once", pageReads, pages)
	}
	// The head (184 entries, three rounds of 64) may be read by each socket.
	if socketReads > 3*sockets {
		t.Errorf("%.0f reads by one socket, want at most %d (the head)", socketReads, 3*sockets)
	}

	// Five more, one after another: the run holds the newest 4,096 frames, and the
	// older ones come from the pages kept, without a store read. (At the run's end
	// a socket may read the head once: its last catch-up from the run filled its
	// batch, so more might have followed.)
	reads := parts.reads.Load()
	for range 5 {
		catchUp(1)
	}
	_, _, later := stats("later")
	if n := parts.reads.Load() - reads; n > 5 {
		t.Errorf("%d store reads for five sockets that came later, want at most one each (the head)", n)
	}
	// Counters 0..2231 are older than the run: nine pages, four rounds each.
	if later-hits < 5*9*4 {
		t.Errorf("%.0f catch-ups from kept pages for the later sockets, want at least %d", later-hits, 5*9*4)
	}
}
