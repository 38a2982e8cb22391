package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrClosed reports a write submitted after Close.
var ErrClosed = errors.New("sqlite: store closed")

// bumpCommits raises the store's commit count (migration 0009).
const bumpCommits = `UPDATE store_meta SET commits = commits + 1 WHERE id = 1`

type writeReq struct {
	fn    func(tx *sql.Tx) error
	after func() // runs on the writer goroutine after a successful commit, in commit order
	done  chan error
}

// Write runs fn in a write transaction and returns once it is committed. Concurrent
// writes are group-committed: the writer goroutine runs every queued function in one
// transaction, each inside its own savepoint, so one failing function rolls back only
// its own changes. fn must not keep tx.
func (db *DB) Write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return db.WriteThen(ctx, fn, nil)
}

// WriteThen is Write, and after runs on the writer goroutine right after the commit,
// before any later transaction commits: callers use it to publish committed changes
// in commit order. after must not block.
//
// If ctx comes from writeJoined, fn joins that transaction instead: it runs at once,
// in its own savepoint, and after runs once the enclosing transaction commits.
func (db *DB) WriteThen(ctx context.Context, fn func(tx *sql.Tx) error, after func()) error {
	if j, ok := ctx.Value(joinKey{}).(*joined); ok && j.db == db && j.tx != nil {
		if err := runSavepoint(ctx, j.tx, fn, false); err != nil {
			return err
		}
		if after != nil {
			j.afters = append(j.afters, after)
		}
		return nil
	}
	req := &writeReq{fn: fn, after: after, done: make(chan error, 1)}
	select {
	case db.writes <- req:
	case <-db.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-db.stopped:
		// The writer finished every queued request before stopping.
		select {
		case err := <-req.done:
			return err
		default:
			return ErrClosed
		}
	}
	// Once queued, a write is not abandoned on ctx cancellation: the caller learns
	// whether it committed.
}

func (db *DB) writer() {
	defer close(db.stopped)
	batch := make([]*writeReq, 0, db.maxBatch)
	for {
		var first *writeReq
		select {
		case first = <-db.writes:
		case <-db.stop:
			// Drain what is queued, then stop.
			for {
				select {
				case req := <-db.writes:
					db.commit([]*writeReq{req})
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < db.maxBatch {
			select {
			case req := <-db.writes:
				batch = append(batch, req)
			default:
				break fill
			}
		}
		db.commit(batch)
	}
}

func (db *DB) commit(batch []*writeReq) {
	ctx := context.Background()
	errs := make([]error, len(batch))
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		for _, req := range batch {
			req.done <- fmt.Errorf("sqlite: begin: %w", err)
		}
		return
	}
	single := len(batch) == 1
	for i, req := range batch {
		errs[i] = runSavepoint(ctx, tx, req.fn, single)
	}
	if single && errs[0] != nil {
		tx.Rollback()
		batch[0].done <- errs[0]
		return
	}
	// Every transaction raises the commit count, which the mark file follows: a
	// store whose count is behind its mark lost committed writes. This process
	// counts its own commits on top of the count it opened with; other processes'
	// commits raise the stored count further, so the mark never runs ahead of it.
	_, err = tx.ExecContext(ctx, bumpCommits)
	if err == nil {
		err = tx.Commit()
	} else {
		tx.Rollback()
	}
	if err != nil {
		for _, req := range batch {
			req.done <- fmt.Errorf("sqlite: commit: %w", err)
		}
		return
	}
	n := db.commits.Add(1)
	if db.mark != nil {
		db.mark.note(n)
	}
	for i, req := range batch {
		if errs[i] == nil && req.after != nil {
			req.after()
		}
		req.done <- errs[i]
	}
}

// runSavepoint runs fn; in a shared transaction it is wrapped in a savepoint so its
// failure undoes only its own changes.
func runSavepoint(ctx context.Context, tx *sql.Tx, fn func(*sql.Tx) error, single bool) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("sqlite: write panicked: %v", p)
			if !single {
				tx.ExecContext(ctx, `ROLLBACK TO w; RELEASE w`)
			}
		}
	}()
	if single {
		return fn(tx)
	}
	if _, err := tx.ExecContext(ctx, `SAVEPOINT w`); err != nil {
		return fmt.Errorf("sqlite: savepoint: %w", err)
	}
	if err := fn(tx); err != nil {
		if _, rerr := tx.ExecContext(ctx, `ROLLBACK TO w; RELEASE w`); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	if _, err := tx.ExecContext(ctx, `RELEASE w`); err != nil {
		return fmt.Errorf("sqlite: release: %w", err)
	}
	return nil
}

// joinKey marks a context whose writes join a transaction in progress.
type joinKey struct{}

// joined is a transaction in progress that writes made with its context join. It
// is used on the writer goroutine only, by fn and what fn calls synchronously.
type joined struct {
	db     *DB
	tx     *sql.Tx  // nil once fn has returned: later writes are ordinary ones
	afters []func() // the joined writes' after functions, run after the commit
}

// writeJoined runs fn in a write transaction, like WriteThen. The context fn gets
// lets other writes of db made with it (by any store method, for any domain) join
// the transaction: they commit or roll back with fn's, and their after functions
// run after the commit, before after. fn must call them synchronously: a write
// made with that context from another goroutine while fn runs is a data race, and a
// write made with a context that does not carry it waits for the writer, which is
// busy running fn: a deadlock. Reads do not see the transaction's writes.
func (db *DB) writeJoined(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error, after func()) error {
	j := &joined{db: db}
	jctx := context.WithValue(ctx, joinKey{}, j)
	return db.WriteThen(ctx, func(tx *sql.Tx) error {
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
