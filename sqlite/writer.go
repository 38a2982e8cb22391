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
func (db *DB) WriteThen(ctx context.Context, fn func(tx *sql.Tx) error, after func()) error {
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
