package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/mimids/mimids/hub"
)

// Application messages to one partition that arrive while an append to it is in
// flight are sequenced together: one statement and one commit for the batch, so
// that a busy partition is not held to one commit (one WAL flush) per message.

// maxAppendBatch bounds the messages of one batch.
const maxAppendBatch = 256

// appendBatchSQL sequences a batch of messages at the end of a partition in one
// statement, in the order of the arrays; no row comes back for an unknown,
// terminated or too full partition, and a request hash already in the log fails it.
const appendBatchSQL = `WITH p AS (
	UPDATE hub_partitions SET length = length + $2
	WHERE masked = $1 AND terminated_at IS NULL AND length + $2 <= 4294967296
	RETURNING id, length - $2 AS first)
INSERT INTO hub_log (partition, counter, content_type, public, message, sender_client, request_hash, at)
	SELECT p.id, p.first + r.ord - 1, r.ct, r.pub, r.msg, r.sender, r.hash, r.at
	FROM p, unnest($3::int[], $4::bool[], $5::bytea[], $6::bigint[], $7::bytea[], $8::bigint[])
		WITH ORDINALITY AS r(ct, pub, msg, sender, hash, at, ord)
	RETURNING counter`

// pendingAppend is one message waiting in its partition's queue.
type pendingAppend struct {
	ctx       context.Context
	a         hub.AppendRequest
	published func(hub.Entry)
	done      chan struct{} // closed once res, ok, err are set, or lead is
	lead      bool          // set (before done is closed) when the waiter is to run the next batch
	res       hub.AppendResult
	ok        bool
	err       error
}

// appendQueue is a partition's messages waiting for the batch in flight. Guarded
// by appendQueues.mu.
type appendQueue struct {
	waiting []*pendingAppend
}

// appendQueues are the partitions with a batch in flight, by masked key.
type appendQueues struct {
	mu sync.Mutex
	m  map[string]*appendQueue
}

// appendOne is Append for a message without commit data or Welcomes. The first
// message of an idle partition leads: it runs a batch of what is waiting (itself
// first), then hands the lead to the next waiter, if any. ok is false, with no
// error, when nothing was sequenced and the full path must say why.
func (db *DB) appendOne(ctx context.Context, a hub.AppendRequest, published func(hub.Entry)) (hub.AppendResult, bool, error) {
	key := string(a.Masked)
	p := &pendingAppend{ctx: ctx, a: a, published: published, done: make(chan struct{})}
	qs := &db.appends
	qs.mu.Lock()
	if qs.m == nil {
		qs.m = map[string]*appendQueue{}
	}
	q, busy := qs.m[key]
	if !busy {
		q = &appendQueue{}
		qs.m[key] = q
	}
	q.waiting = append(q.waiting, p)
	qs.mu.Unlock()
	if busy {
		<-p.done // p.lead is set before done is closed
		if !p.lead {
			return p.res, p.ok, p.err
		}
	}
	// Lead: take what waits (this message first: it is the oldest), run it, and
	// pass the lead on.
	qs.mu.Lock()
	n := min(len(q.waiting), maxAppendBatch)
	batch := q.waiting[:n:n]
	q.waiting = q.waiting[n:]
	qs.mu.Unlock()
	db.runAppendBatch(batch)
	qs.mu.Lock()
	if len(q.waiting) > 0 {
		next := q.waiting[0]
		next.lead = true
		close(next.done)
	} else {
		delete(qs.m, key)
	}
	qs.mu.Unlock()
	return p.res, p.ok, p.err
}

// runAppendBatch sequences batch (messages to one partition, oldest first) in
// one statement, or, if that fails or sequences nothing, each message alone
// (which tells duplicates and refusals apart); then it publishes each message
// sequenced, in counter order, and wakes the waiters.
func (db *DB) runAppendBatch(batch []*pendingAppend) {
	defer db.ord.lock(partitionKey(batch[0].a.Masked))()
	defer func() {
		for _, p := range batch[1:] {
			close(p.done)
		}
	}()
	if len(batch) > 1 {
		if first, ok := db.appendMany(batch); ok {
			for i, p := range batch {
				p.res, p.ok = hub.AppendResult{Masked: p.a.Masked, Counter: first + uint32(i)}, true
				if p.published != nil {
					p.published(hub.Entry{Masked: p.a.Masked, Counter: p.res.Counter, ContentType: p.a.ContentType,
						Public: p.a.Public, Message: p.a.Message})
				}
			}
			return
		}
	}
	for _, p := range batch {
		p.res, p.ok, p.err = db.appendSingle(p.ctx, p.a, p.published)
	}
}

// appendMany runs appendBatchSQL for batch and returns the first counter; ok is
// false if it sequenced nothing (the batch is then sequenced message by message).
func (db *DB) appendMany(batch []*pendingAppend) (first uint32, ok bool) {
	n := len(batch)
	cts, pubs := make([]int32, n), make([]bool, n)
	msgs, hashes := make([][]byte, n), make([][]byte, n)
	senders, ats := make([]int64, n), make([]int64, n)
	for i, p := range batch {
		cts[i], pubs[i], msgs[i], hashes[i] = int32(p.a.ContentType), p.a.Public, p.a.Message, p.a.RequestHash
		senders[i], ats[i] = p.a.SenderClient, p.a.At.UnixMilli()
	}
	// Not abandoned when one message's context ends: the others wait for it, and
	// a statement cut off after its commit would leave its messages unpublished.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(batch[0].ctx), time.Minute)
	defer cancel()
	rows, err := db.pool.QueryContext(ctx, appendBatchSQL, batch[0].a.Masked, n, cts, pubs, msgs, senders, hashes, ats)
	if err != nil {
		return 0, false
	}
	defer rows.Close()
	lowest, count := int64(-1), 0
	for rows.Next() {
		var c int64
		if rows.Scan(&c) != nil {
			return 0, false
		}
		if lowest < 0 || c < lowest {
			lowest = c
		}
		count++
	}
	if rows.Err() != nil || count != n {
		return 0, false
	}
	return uint32(lowest), true
}
