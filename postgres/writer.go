package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"
)

// Write runs fn in a transaction and returns once it is committed. A transaction
// that PostgreSQL aborts for a serialization failure or a deadlock is run again
// (fn must set its results afresh on each run). fn must not keep tx.
func (db *DB) Write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return db.writeThen(ctx, "", fn, nil)
}

// ordering serializes, per key, each commit with its after function: a node
// publishes its own commits of one key (a partition, a client's mailbox, a peer's
// queue) in commit order. The keys are hashed onto stripes.
type ordering struct{ stripes [512]sync.Mutex }

func (o *ordering) stripe(key string) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(len(o.stripes)))
}

// orderingOf is the ordering of key: mailbox keys ("m…") have one of their own,
// so that an enqueue for every client ("m*") holds up no other kind of write.
func (db *DB) orderingOf(key string) *ordering {
	if key[0] == 'm' {
		return &db.mailOrd
	}
	return &db.ord
}

// lock locks the stripes of keys (in stripe order, so two callers cannot deadlock)
// and returns their unlock; the key "m*" locks every stripe.
func (o *ordering) lock(keys ...string) func() {
	var idx []int
	for _, k := range keys {
		if k == "m*" {
			idx = idx[:0]
			for i := range o.stripes {
				idx = append(idx, i)
			}
			break
		}
		idx = append(idx, o.stripe(k))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		o.stripes[i].Lock()
	}
	return func() {
		for _, i := range slices.Backward(idx) {
			o.stripes[i].Unlock()
		}
	}
}

// writeThen is Write, and after runs right after the commit, before any later
// commit of this process with the same ordering key ("" : none) does. If ctx comes
// from writeJoined, fn joins that transaction instead: it runs at once in its own
// savepoint, and after runs once the enclosing transaction commits.
func (db *DB) writeThen(ctx context.Context, key string, fn func(tx *sql.Tx) error, after func()) error {
	if j, ok := ctx.Value(joinKey{}).(*joined); ok && j.db == db && j.tx != nil {
		if key != "" && !slices.Contains(j.keys, key) {
			j.keys = append(j.keys, key)
			j.unlocks = append(j.unlocks, db.orderingOf(key).lock(key))
		}
		if err := runSavepoint(ctx, j.tx, fn); err != nil {
			return err
		}
		if after != nil {
			j.afters = append(j.afters, after)
		}
		return nil
	}
	if key != "" {
		defer db.orderingOf(key).lock(key)()
	}
	var err error
	for attempt := 0; attempt < 8; attempt++ {
		if err = db.tryWrite(ctx, fn); !retryable(err) {
			break
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 5 * time.Millisecond):
		}
	}
	if err == nil && after != nil {
		after()
	}
	return err
}

func (db *DB) tryWrite(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	tx, err := db.pool.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			tx.Rollback()
			err = fmt.Errorf("postgres: write panicked: %v", p)
		}
	}()
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}

// retryable reports a transaction PostgreSQL aborted that may succeed when run
// again: a serialization failure or a deadlock.
func retryable(err error) bool {
	c := pgCode(err)
	return c == "40001" || c == "40P01"
}

// runSavepoint runs fn inside a savepoint of tx, so that its failure undoes only
// its own changes (and leaves tx usable: PostgreSQL aborts a transaction on an
// error until it rolls back to a savepoint).
func runSavepoint(ctx context.Context, tx *sql.Tx, fn func(*sql.Tx) error) (err error) {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT w`); err != nil {
		return fmt.Errorf("postgres: savepoint: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("postgres: write panicked: %v", p)
		}
		if err != nil {
			if _, rerr := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT w; RELEASE SAVEPOINT w`); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `RELEASE SAVEPOINT w`); err != nil {
		return fmt.Errorf("postgres: release: %w", err)
	}
	return nil
}

// joinedIn reports whether writes of db made with ctx join a transaction.
func joinedIn(ctx context.Context, db *DB) bool {
	j, ok := ctx.Value(joinKey{}).(*joined)
	return ok && j.db == db && j.tx != nil
}

// joinKey marks a context whose writes join a transaction in progress.
type joinKey struct{}

// joined is a transaction in progress that writes made with its context join. It
// is used by fn and what fn calls synchronously only.
type joined struct {
	db      *DB
	tx      *sql.Tx  // nil once fn has returned: later writes are ordinary ones
	afters  []func() // the joined writes' after functions, run after the commit
	keys    []string // the joined writes' ordering keys, locked until after the afters
	unlocks []func()
}

// writeJoined runs fn in a write transaction, like writeThen without a key. The
// context fn gets lets other writes of db made with it (by any store method, for
// any domain) join the transaction: they commit or roll back with fn's, and their
// after functions run after the commit, before after. fn must call them
// synchronously.
func (db *DB) writeJoined(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error, after func()) error {
	j := &joined{db: db}
	jctx := context.WithValue(ctx, joinKey{}, j)
	defer func() {
		for _, u := range slices.Backward(j.unlocks) {
			u()
		}
	}()
	return db.writeThen(ctx, "", func(tx *sql.Tx) error {
		j.tx, j.afters = tx, j.afters[:0]
		defer func() { j.tx = nil }()
		return fn(jctx, tx)
	}, func() {
		for _, a := range j.afters {
			a()
		}
		if after != nil {
			after()
		}
	})
}

// Advisory lock keys: of writes that check, then insert, a singleton; and of the
// change log's inserts, which take their ids under the lock until they commit, so
// that ids commit in order and a reader polling for ids above the last it saw
// never passes over one committed later (as identity values alone would allow).
const (
	lockDiscoverySecrets = 0x6d696d6964730002
	lockSharedToken      = 0x6d696d6964730003
	lockChangeLog        = 0x6d696d6964730004
)

// xactLock takes an advisory lock until tx ends: writes of every node that take
// the same key run one at a time.
func xactLock(ctx context.Context, tx *sql.Tx, key int64) error {
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, key); err != nil {
		return fmt.Errorf("postgres: lock: %w", err)
	}
	return nil
}
