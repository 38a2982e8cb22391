package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/mimids/mimids/follower"
	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/protocol"
)

var _ follower.CopyStore = (*DB)(nil)

// Partition copies (migration 0013): the follower's local copies of partitions
// hosted elsewhere, and the hub's record of each follower's progress.

func (db *DB) FollowCopy(ctx context.Context, masked, digest []byte, hub string, at time.Time) (follower.CopyRecord, error) {
	var rec follower.CopyRecord
	err := db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO follower_copies (masked, hub, learned_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			masked, hub, at.UnixMilli()); err != nil {
			return err
		}
		row := tx.QueryRowContext(ctx, `UPDATE follower_copies SET digest = coalesce(digest, $1), used_at = $2 WHERE masked = $3
			RETURNING masked, digest, hub, next, done, used_at, learned_at`, digest, at.UnixMilli(), masked)
		return scanCopy(row.Scan, &rec)
	})
	if err != nil {
		return follower.CopyRecord{}, fmt.Errorf("postgres: follow copy: %w", err)
	}
	return rec, nil
}

func scanCopy(scan func(...any) error, rec *follower.CopyRecord) error {
	var next, used, learned int64
	var done int
	if err := scan(&rec.Masked, &rec.Digest, &rec.Hub, &next, &done, &used, &learned); err != nil {
		return err
	}
	if used == 0 {
		used = learned
	}
	rec.Next, rec.Done, rec.UsedAt = uint32(next), done != 0, time.UnixMilli(used)
	return nil
}

func (db *DB) CopyRecords(ctx context.Context) ([]follower.CopyRecord, error) {
	rows, err := db.pool.QueryContext(ctx, `SELECT masked, digest, hub, next, done, used_at, learned_at FROM follower_copies`)
	if err != nil {
		return nil, fmt.Errorf("postgres: copy records: %w", err)
	}
	defer rows.Close()
	var out []follower.CopyRecord
	for rows.Next() {
		var rec follower.CopyRecord
		if err := scanCopy(rows.Scan, &rec); err != nil {
			return nil, fmt.Errorf("postgres: copy records: %w", err)
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: copy records: %w", err)
	}
	return out, nil
}

func (db *DB) TouchCopies(ctx context.Context, masked [][]byte, at time.Time) error {
	if len(masked) == 0 {
		return nil
	}
	if _, err := db.pool.ExecContext(ctx, `UPDATE follower_copies SET used_at = $1 WHERE masked = ANY($2)`,
		at.UnixMilli(), masked); err != nil {
		return fmt.Errorf("postgres: touch copies: %w", err)
	}
	return nil
}

func (db *DB) RemoveCopy(ctx context.Context, masked []byte) error {
	err := db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM follower_copy_log WHERE masked = $1`, masked); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM follower_copies WHERE masked = $1`, masked)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: remove copy: %w", err)
	}
	return nil
}

// RemovePushSub forgets a follower's subscription; it reports whether there was one.
func (db *DB) RemovePushSub(ctx context.Context, peer string, masked []byte) (bool, error) {
	res, err := db.pool.ExecContext(ctx, `DELETE FROM hub_push_subs WHERE peer = $1 AND masked = $2`, peer, masked)
	if err != nil {
		return false, fmt.Errorf("postgres: remove push sub: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("postgres: remove push sub: %w", err)
	}
	return n > 0, nil
}

func (db *DB) AppendCopy(ctx context.Context, masked []byte, entries []protocol.PushEntry, after func([]protocol.PushEntry)) (uint32, bool, error) {
	var next uint32
	var done bool
	var applied []protocol.PushEntry
	err := db.writeThen(ctx, "c"+string(masked), func(tx *sql.Tx) error {
		applied = applied[:0]
		var n int64
		var d int
		if err := tx.QueryRowContext(ctx, `SELECT next, done FROM follower_copies WHERE masked = $1 FOR UPDATE`, masked).Scan(&n, &d); err != nil {
			return err
		}
		next, done = uint32(n), d != 0
		for _, e := range entries {
			if done || e.Counter < next {
				continue
			}
			if e.Counter != next {
				break // a gap: the hub pushes again from next
			}
			t := 0
			if e.Terminated {
				t = 1
			}
			msg := e.Message
			if msg == nil {
				msg = []byte{}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO follower_copy_log (masked, counter, terminated, message) VALUES ($1, $2, $3, $4)`,
				masked, e.Counter, t, msg); err != nil {
				return err
			}
			applied = append(applied, e)
			if e.Terminated {
				done = true
			} else {
				next++
			}
		}
		if len(applied) == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, `UPDATE follower_copies SET next = $1, done = $2 WHERE masked = $3`, next, boolInt(done), masked)
		return err
	}, func() {
		if after != nil {
			after(applied)
		}
	})
	if err != nil {
		return 0, false, fmt.Errorf("postgres: append copy: %w", err)
	}
	return next, done, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (db *DB) FetchCopy(ctx context.Context, masked []byte, after int64, limit int) ([]protocol.PushEntry, error) {
	rows, err := db.pool.QueryContext(ctx, `SELECT counter, terminated, message FROM follower_copy_log
		WHERE masked = $1 AND counter > $2 ORDER BY counter LIMIT $3`, masked, after, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: fetch copy: %w", err)
	}
	defer rows.Close()
	var out []protocol.PushEntry
	for rows.Next() {
		var e protocol.PushEntry
		var c int64
		var t int
		if err := rows.Scan(&c, &t, &e.Message); err != nil {
			return nil, fmt.Errorf("postgres: fetch copy: %w", err)
		}
		e.Counter, e.Terminated = uint32(c), t != 0
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: fetch copy: %w", err)
	}
	return out, nil
}

// AddPushSub records a follower's subscription starting at from, unless one is
// recorded, and returns the recorded one.
func (db *DB) AddPushSub(ctx context.Context, peer string, masked []byte, from uint32) (hub.PushSub, error) {
	s := hub.PushSub{Peer: peer, Masked: masked}
	err := db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO hub_push_subs (peer, masked, next) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			peer, masked, from); err != nil {
			return err
		}
		var n int64
		var d int
		err := tx.QueryRowContext(ctx, `SELECT next, done FROM hub_push_subs WHERE peer = $1 AND masked = $2`, peer, masked).Scan(&n, &d)
		s.Next, s.Done = uint32(n), d != 0
		return err
	})
	if err != nil {
		return hub.PushSub{}, fmt.Errorf("postgres: add push sub: %w", err)
	}
	return s, nil
}

// SetPushProgress records where a follower's copy stands, by its answer.
func (db *DB) SetPushProgress(ctx context.Context, peer string, masked []byte, next uint32, done bool) error {
	err := db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE hub_push_subs SET next = $1, done = $2 WHERE peer = $3 AND masked = $4`,
			next, boolInt(done), peer, masked)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: set push progress: %w", err)
	}
	return nil
}

// PushSubs returns every follower subscription not done.
func (db *DB) PushSubs(ctx context.Context) ([]hub.PushSub, error) {
	rows, err := db.pool.QueryContext(ctx, `SELECT peer, masked, next FROM hub_push_subs WHERE done = 0`)
	if err != nil {
		return nil, fmt.Errorf("postgres: push subs: %w", err)
	}
	defer rows.Close()
	var out []hub.PushSub
	for rows.Next() {
		var s hub.PushSub
		var n int64
		if err := rows.Scan(&s.Peer, &s.Masked, &n); err != nil {
			return nil, fmt.Errorf("postgres: push subs: %w", err)
		}
		s.Next = uint32(n)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: push subs: %w", err)
	}
	return out, nil
}
