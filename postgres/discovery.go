package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mimids/mimids/directory"
)

// The discovery-token store (directory.DiscoveryStore): secrets, the shared token and
// the revocation list. Times are Unix milliseconds.

var _ directory.DiscoveryStore = (*DB)(nil)

func (db *DB) DiscoverySecrets(ctx context.Context, fresh []byte, now time.Time) ([]directory.DiscoverySecret, error) {
	list, err := db.discoverySecrets(ctx, db.pool)
	if err != nil || len(list) > 0 || fresh == nil {
		return list, err
	}
	err = db.Write(ctx, func(tx *sql.Tx) error {
		if err := xactLock(ctx, tx, lockDiscoverySecrets); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM discovery_secrets`).Scan(&n); err != nil || n > 0 {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO discovery_secrets (secret, created_at) VALUES ($1, $2)`, fresh, now.UnixMilli())
		return err
	})
	if err != nil {
		return nil, err
	}
	return db.discoverySecrets(ctx, db.pool)
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (db *DB) discoverySecrets(ctx context.Context, q querier) ([]directory.DiscoverySecret, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, secret, created_at, COALESCE(retired_at, 0) FROM discovery_secrets ORDER BY id DESC`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []directory.DiscoverySecret
	for rows.Next() {
		var s directory.DiscoverySecret
		var created, retired int64
		if err := rows.Scan(&s.ID, &s.Secret, &created, &retired); err != nil {
			return nil, err
		}
		s.CreatedAt = unixTime(created)
		if retired != 0 {
			s.RetiredAt = unixTime(retired)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func (db *DB) AddDiscoverySecret(ctx context.Context, secret []byte, retireOthers bool, now time.Time) (directory.DiscoverySecret, error) {
	s := directory.DiscoverySecret{Secret: secret, CreatedAt: now.UTC().Truncate(time.Millisecond)}
	err := db.Write(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `INSERT INTO discovery_secrets (secret, created_at) VALUES ($1, $2) RETURNING id`,
			secret, now.UnixMilli()).Scan(&s.ID); err != nil {
			return err
		}
		if !retireOthers {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE discovery_secrets SET retired_at = $1 WHERE id != $2 AND retired_at IS NULL`,
			now.UnixMilli(), s.ID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM discovery_shared_token WHERE secret_id != $1`, s.ID)
		return err
	})
	return s, err
}

const liveSharedToken = `SELECT token_id, secret_id, issued_at, COALESCE(expires_at, 0) FROM discovery_shared_token
	WHERE slot = 1 AND (expires_at IS NULL OR expires_at > $1)`

func scanShared(row *sql.Row) (directory.DiscoveryToken, error) {
	t := directory.DiscoveryToken{Policy: directory.TokenShared}
	var issued, expires int64
	if err := row.Scan(&t.ID, &t.SecretID, &issued, &expires); err != nil {
		return t, err
	}
	t.IssuedAt = unixTime(issued)
	if expires != 0 {
		t.ExpiresAt = unixTime(expires)
	}
	return t, nil
}

func (db *DB) SharedDiscoveryToken(ctx context.Context, candidate directory.DiscoveryToken, now time.Time) (directory.DiscoveryToken, error) {
	t, err := scanShared(db.pool.QueryRowContext(ctx, liveSharedToken, now.UnixMilli()))
	switch {
	case err == nil:
		return t, nil
	case !errors.Is(err, sql.ErrNoRows):
		return t, err
	case candidate.ID == 0:
		return t, directory.ErrNotFound
	}
	err = db.Write(ctx, func(tx *sql.Tx) error {
		if err := xactLock(ctx, tx, lockSharedToken); err != nil {
			return err
		}
		t, err = scanShared(tx.QueryRowContext(ctx, liveSharedToken, now.UnixMilli()))
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		t = candidate
		t.Policy, t.UserID = directory.TokenShared, 0
		_, err := tx.ExecContext(ctx, `INSERT INTO discovery_shared_token (slot, token_id, secret_id, issued_at, expires_at)
			VALUES (1, $1, $2, $3, $4) ON CONFLICT (slot) DO UPDATE SET token_id = excluded.token_id, secret_id = excluded.secret_id,
			issued_at = excluded.issued_at, expires_at = excluded.expires_at`,
			t.ID, t.SecretID, t.IssuedAt.UnixMilli(), nullMillis(t.ExpiresAt))
		return err
	})
	if err != nil {
		return directory.DiscoveryToken{}, err
	}
	t.IssuedAt = t.IssuedAt.UTC().Truncate(time.Millisecond)
	if !t.ExpiresAt.IsZero() {
		t.ExpiresAt = t.ExpiresAt.UTC().Truncate(time.Millisecond)
	}
	return t, nil
}

func (db *DB) RevokeDiscoveryToken(ctx context.Context, id int64, until, at time.Time) (directory.TokenRevocation, error) {
	r := directory.TokenRevocation{TokenID: id}
	err := db.Write(ctx, func(tx *sql.Tx) error {
		var expires sql.NullInt64
		err := tx.QueryRowContext(ctx, `DELETE FROM discovery_shared_token WHERE token_id = $1 RETURNING expires_at`, id).Scan(&expires)
		switch {
		case err == nil:
			until = time.Time{}
			if expires.Valid {
				until = unixTime(expires.Int64)
			}
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO discovery_revoked_tokens (token_id, revoked_at, until) VALUES ($1, $2, $3)
			ON CONFLICT (token_id) DO UPDATE SET until = CASE WHEN discovery_revoked_tokens.until IS NULL OR excluded.until IS NULL THEN NULL
			ELSE GREATEST(discovery_revoked_tokens.until, excluded.until) END`, id, at.UnixMilli(), nullMillis(until)); err != nil {
			return err
		}
		var revoked, u int64
		if err := tx.QueryRowContext(ctx, `SELECT revoked_at, COALESCE(until, 0) FROM discovery_revoked_tokens WHERE token_id = $1`,
			id).Scan(&revoked, &u); err != nil {
			return err
		}
		r.RevokedAt = unixTime(revoked)
		if u != 0 {
			r.Until = unixTime(u)
		}
		return nil
	})
	return r, err
}

func (db *DB) RevokeDiscoveryTokensBefore(ctx context.Context, userID int64, at time.Time) (directory.TokenCutoff, error) {
	c := directory.TokenCutoff{UserID: userID}
	err := db.Write(ctx, func(tx *sql.Tx) error {
		var before int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO discovery_token_cutoffs (user_id, before) VALUES ($1, $2)
			ON CONFLICT (user_id) DO UPDATE SET before = GREATEST(discovery_token_cutoffs.before, excluded.before) RETURNING before`,
			userID, at.UnixMilli()).Scan(&before); err != nil {
			return err
		}
		c.Before = unixTime(before)
		if userID == 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM discovery_shared_token WHERE issued_at < $1`, before); err != nil {
				return err
			}
		}
		err := tx.QueryRowContext(ctx, `SELECT name FROM users WHERE id = $1`, userID).Scan(&c.UserName)
		if errors.Is(err, sql.ErrNoRows) {
			err = nil
		}
		return err
	})
	return c, err
}

func (db *DB) DiscoveryRevocations(ctx context.Context, now time.Time) (directory.Revocations, error) {
	var out directory.Revocations
	rows, err := db.pool.QueryContext(ctx, `SELECT token_id, revoked_at, COALESCE(until, 0) FROM discovery_revoked_tokens
		WHERE until IS NULL OR until > $1 ORDER BY revoked_at, token_id`, now.UnixMilli())
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		var r directory.TokenRevocation
		var revoked, until int64
		if err := rows.Scan(&r.TokenID, &revoked, &until); err != nil {
			return out, err
		}
		r.RevokedAt = unixTime(revoked)
		if until != 0 {
			r.Until = unixTime(until)
		}
		out.Tokens = append(out.Tokens, r)
	}
	if err := rows.Err(); err != nil {
		return out, err
	}
	crows, err := db.pool.QueryContext(ctx, `SELECT c.user_id, COALESCE(u.name, ''), c.before FROM discovery_token_cutoffs c
		LEFT JOIN users u ON u.id = c.user_id ORDER BY c.user_id`)
	if err != nil {
		return out, err
	}
	defer crows.Close()
	for crows.Next() {
		var c directory.TokenCutoff
		var before int64
		if err := crows.Scan(&c.UserID, &c.UserName, &before); err != nil {
			return out, err
		}
		c.Before = unixTime(before)
		out.Cutoffs = append(out.Cutoffs, c)
	}
	if err := crows.Err(); err != nil {
		return out, fmt.Errorf("postgres: token cutoffs: %w", err)
	}
	return out, nil
}

func nullMillis(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}
