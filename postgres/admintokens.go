package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mimids/mimids/directory"
)

const adminTokenCols = `id, name, created_at, COALESCE(expires_at, 0), COALESCE(revoked_at, 0), COALESCE(last_used_at, 0), read_only`

func scanAdminToken(s scanner) (directory.AdminToken, error) {
	var t directory.AdminToken
	var at, exp, rev, used int64
	if err := s.Scan(&t.ID, &t.Name, &at, &exp, &rev, &used, &t.ReadOnly); err != nil {
		return t, err
	}
	t.CreatedAt = unixTime(at)
	t.ExpiresAt, t.RevokedAt, t.LastUsedAt = optTime(exp), optTime(rev), optTime(used)
	return t, nil
}

// optTime is a nullable time column read as 0: the zero time.
func optTime(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return unixTime(v)
}

// optMillis is a time to store in a nullable column: NULL for the zero time.
func optMillis(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

func (db *DB) CreateAdminToken(ctx context.Context, t directory.AdminToken, hash []byte) (directory.AdminToken, error) {
	t.CreatedAt = t.CreatedAt.UTC().Truncate(time.Millisecond)
	if !t.ExpiresAt.IsZero() {
		t.ExpiresAt = t.ExpiresAt.UTC().Truncate(time.Millisecond)
	}
	err := db.Write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO admin_tokens (name, token_hash, created_at, expires_at, read_only) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
			t.Name, hash, t.CreatedAt.UnixMilli(), optMillis(t.ExpiresAt), t.ReadOnly).Scan(&t.ID)
		if isUnique(err) {
			return fmt.Errorf("%w: admin token hash", directory.ErrExists)
		}
		return err
	})
	return t, err
}

func (db *DB) AdminTokenByHash(ctx context.Context, hash []byte) (directory.AdminToken, error) {
	t, err := scanAdminToken(db.pool.QueryRowContext(ctx, `SELECT `+adminTokenCols+` FROM admin_tokens WHERE token_hash = $1`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return t, directory.ErrNotFound
	}
	return t, err
}

func (db *DB) ListAdminTokens(ctx context.Context) ([]directory.AdminToken, error) {
	rows, err := db.pool.QueryContext(ctx, `SELECT `+adminTokenCols+` FROM admin_tokens ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ts []directory.AdminToken
	for rows.Next() {
		t, err := scanAdminToken(rows)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, rows.Err()
}

func (db *DB) RevokeAdminToken(ctx context.Context, id int64, at time.Time) (directory.AdminToken, error) {
	var t directory.AdminToken
	err := db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE admin_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, at.UnixMilli(), id); err != nil {
			return err
		}
		var err error
		t, err = scanAdminToken(tx.QueryRowContext(ctx, `SELECT `+adminTokenCols+` FROM admin_tokens WHERE id = $1`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: admin token %d", directory.ErrNotFound, id)
		}
		return err
	})
	return t, err
}

func (db *DB) TouchAdminToken(ctx context.Context, id int64, at time.Time) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE admin_tokens SET last_used_at = $1 WHERE id = $2`, at.UnixMilli(), id)
		return err
	})
}

func (db *DB) CountAdminTokens(ctx context.Context) (int, error) {
	var n int
	err := db.pool.QueryRowContext(ctx, `SELECT count(*) FROM admin_tokens`).Scan(&n)
	return n, err
}
