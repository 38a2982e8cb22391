package gateway

import (
	"context"
	"sync"

	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/protocol"
)

// frameCache shares one client's encoded deliver frames among its sockets: an entry
// is read from the store and encoded once, however many sockets deliver it, and
// every queue holds the same bytes. It keeps a window of consecutive seqs bounded in
// bytes, holding only frames some socket of the client has yet to queue (a client
// with one socket keeps none), and lets one store read at a time run for the client,
// sized so that a read holds about one window of payload, not a page of the largest
// entries.
type frameCache struct {
	// Static after construction.
	max   int           // bytes of frames kept
	fetch chan struct{} // a slot for the one store read of the client

	mu     sync.Mutex
	first  uint64   // seq of frames[0]; Guarded by mu.
	frames [][]byte // encoded deliver frames of seqs first, first+1, ...; Guarded by mu.
	size   int      // bytes in frames; Guarded by mu.
	avg    int      // average frame size of the last store read (0: none yet); Guarded by mu.
	// cursors is the last seq each socket of the client queued; Guarded by mu.
	cursors map[*session]uint64
}

// seqFrame is one encoded deliver frame and its seq.
type seqFrame struct {
	seq   uint64
	frame []byte
}

func newFrameCache(max int) *frameCache {
	return &frameCache{max: max, fetch: make(chan struct{}, 1), cursors: make(map[*session]uint64)}
}

func encodeDeliver(e mailbox.Entry) []byte {
	return protocol.Encode(&protocol.Deliver{Seq: e.Seq, Kind: protocol.Kind(e.Kind), EnqueuedAtMS: uint64(e.EnqueuedAt.UnixMilli()), Payload: e.Payload})
}

// frame returns the encoded deliver frame of e, encoding it only if no socket of the
// client did yet.
func (fc *frameCache) frame(e mailbox.Entry) []byte {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if b := fc.lookup(e.Seq); b != nil {
		return b
	}
	b := encodeDeliver(e)
	fc.add(e.Seq, b)
	return b
}

// lookup returns the cached frame of seq, or nil. fc.mu is held.
func (fc *frameCache) lookup(seq uint64) []byte {
	if seq < fc.first || seq-fc.first >= uint64(len(fc.frames)) {
		return nil
	}
	return fc.frames[seq-fc.first]
}

// add keeps b as the frame of seq if it extends the window, or starts the window
// when it is empty, and the window has room. A full window keeps its oldest frames,
// which a socket that connects starts from, until they are acked. fc.mu is held.
func (fc *frameCache) add(seq uint64, b []byte) {
	if len(fc.frames) == 0 {
		fc.first, fc.size = seq, 0
	} else if seq != fc.first+uint64(len(fc.frames)) || fc.size+len(b) > fc.max {
		return
	}
	fc.frames = append(fc.frames, b)
	fc.size += len(b)
}

// drop forgets the oldest frame. fc.mu is held.
func (fc *frameCache) drop() {
	fc.size -= len(fc.frames[0])
	fc.frames[0] = nil
	fc.frames = fc.frames[1:]
	fc.first++
	if len(fc.frames) == 0 {
		fc.frames = nil
	}
}

// join counts a socket that has queued nothing yet.
func (fc *frameCache) join(ss *session) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.cursors[ss] = 0
}

// leave forgets a socket that ended.
func (fc *frameCache) leave(ss *session) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	delete(fc.cursors, ss)
	fc.trim()
}

// advance records that ss has queued every entry up to seq.
func (fc *frameCache) advance(ss *session, seq uint64) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if _, ok := fc.cursors[ss]; ok {
		fc.cursors[ss] = seq
		fc.trim()
	}
}

// trim forgets the frames every socket of the client has queued. fc.mu is held.
func (fc *frameCache) trim() {
	low := ^uint64(0)
	for _, seq := range fc.cursors {
		low = min(low, seq)
	}
	for len(fc.frames) > 0 && fc.first <= low {
		fc.drop()
	}
}

// acked forgets the frames of seqs up to seq: the store no longer has them.
func (fc *frameCache) acked(seq uint64) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	for len(fc.frames) > 0 && fc.first <= seq {
		fc.drop()
	}
	if len(fc.frames) == 0 && fc.first <= seq {
		fc.first = seq + 1
	}
}

// cached returns up to limit cached frames from seq after+1 on. fc.mu is held.
func (fc *frameCache) cached(after uint64, limit int) []seqFrame {
	var out []seqFrame
	for seq := after + 1; len(out) < limit; seq++ {
		b := fc.lookup(seq)
		if b == nil {
			break
		}
		out = append(out, seqFrame{seq, b})
	}
	return out
}

// readLimit is how many entries one store read asks for: a page of ReplayBatch,
// fewer when the entries are large, so that one read holds about max bytes.
// fc.mu is held.
func (fc *frameCache) readLimit(limit int) int {
	avg := fc.avg
	if avg == 0 {
		avg = mailbox.MaxPayload // nothing seen yet: assume the worst
	}
	return max(1, min(limit, fc.max/avg))
}

// read returns up to limit frames after seq after, from the cache and then from the
// store, and whether more may follow. ctx ending while it waits for the client's
// store slot returns nothing and no error.
func (fc *frameCache) read(ctx context.Context, mb Mailbox, clientID int64, after uint64, limit int) ([]seqFrame, bool, error) {
	select {
	case fc.fetch <- struct{}{}:
	case <-ctx.Done():
		return nil, true, nil
	}
	defer func() { <-fc.fetch }()
	fc.mu.Lock()
	out := fc.cached(after, limit)
	n := fc.readLimit(limit - len(out))
	fc.mu.Unlock()
	if len(out) == limit {
		return out, true, nil
	}
	if len(out) > 0 {
		after = out[len(out)-1].seq
	}
	entries, err := mb.Fetch(ctx, clientID, after, n)
	if err != nil {
		return nil, false, err
	}
	size := 0
	for _, e := range entries {
		b := fc.frame(e)
		size += len(b)
		out = append(out, seqFrame{e.Seq, b})
	}
	if len(entries) > 0 {
		fc.mu.Lock()
		fc.avg = max(1, size/len(entries))
		fc.mu.Unlock()
	}
	return out, len(entries) == n, nil
}
