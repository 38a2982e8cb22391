package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mimids/mimids/directory"
)

var _ directory.Store = (*DB)(nil)

func (db *DB) CreateUser(ctx context.Context, name string, at time.Time) (directory.User, error) {
	u := directory.User{Name: name, CreatedAt: at.UTC().Truncate(time.Millisecond)}
	err := db.Write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO users (name, created_at) VALUES ($1, $2) RETURNING id`, name, at.UnixMilli()).Scan(&u.ID)
		if isUnique(err) {
			return fmt.Errorf("%w: user %q", directory.ErrExists, name)
		}
		return err
	})
	return u, err
}

func (db *DB) User(ctx context.Context, name string) (directory.User, error) {
	u := directory.User{Name: name}
	var at int64
	err := db.pool.QueryRowContext(ctx, `SELECT id, created_at FROM users WHERE name = $1`, name).Scan(&u.ID, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("%w: user %q", directory.ErrNotFound, name)
	}
	u.CreatedAt = unixTime(at)
	return u, err
}

// scanUsers reads rows of (id, name, created_at) and closes them.
func scanUsers(rows *sql.Rows) ([]directory.User, error) {
	defer rows.Close()
	var us []directory.User
	for rows.Next() {
		var u directory.User
		var at int64
		if err := rows.Scan(&u.ID, &u.Name, &at); err != nil {
			return nil, err
		}
		u.CreatedAt = unixTime(at)
		us = append(us, u)
	}
	return us, rows.Err()
}

func (db *DB) ListUsers(ctx context.Context) ([]directory.User, error) {
	rows, err := db.pool.QueryContext(ctx, `SELECT id, name, created_at FROM users ORDER BY name`)
	if err != nil {
		return nil, err
	}
	return scanUsers(rows)
}

const clientCols = `c.id, c.user_id, u.name, c.name, c.created_at, COALESCE(c.revoked_at, 0)`

func scanClient(s scanner) (directory.Client, error) {
	var c directory.Client
	var at, rev int64
	if err := s.Scan(&c.ID, &c.UserID, &c.UserName, &c.Name, &at, &rev); err != nil {
		return c, err
	}
	c.CreatedAt = unixTime(at)
	if rev != 0 {
		c.RevokedAt = unixTime(rev)
	}
	return c, nil
}

func queryClients(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, where string, args ...any) ([]directory.Client, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+clientCols+` FROM clients c JOIN users u ON u.id = c.user_id WHERE `+where+` ORDER BY u.name, c.name`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cs []directory.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, rows.Err()
}

func (db *DB) DeleteUser(ctx context.Context, name string) ([]directory.Client, error) {
	var cs []directory.Client
	err := db.Write(ctx, func(tx *sql.Tx) error {
		var err error
		cs, err = queryClients(ctx, tx, `u.name = $1`, name)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM users WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: user %q", directory.ErrNotFound, name)
		}
		return nil
	})
	return cs, err
}

func (db *DB) CreateClient(ctx context.Context, user, client string, tokenHash []byte, createUser bool, at time.Time) (directory.Client, error) {
	c := directory.Client{UserName: user, Name: client, CreatedAt: at.UTC().Truncate(time.Millisecond)}
	err := db.Write(ctx, func(tx *sql.Tx) error {
		if createUser {
			// A concurrent CreateClient (of any node) may create the user first.
			if _, err := tx.ExecContext(ctx, `INSERT INTO users (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
				user, at.UnixMilli()); err != nil {
				return err
			}
		}
		err := tx.QueryRowContext(ctx, `SELECT id FROM users WHERE name = $1`, user).Scan(&c.UserID)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: user %q", directory.ErrNotFound, user)
		}
		if err != nil {
			return err
		}
		err = tx.QueryRowContext(ctx, `INSERT INTO clients (user_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id`,
			c.UserID, client, tokenHash, at.UnixMilli()).Scan(&c.ID)
		if isUnique(err) {
			return fmt.Errorf("%w: client %q of user %q", directory.ErrExists, client, user)
		}
		return err
	})
	return c, err
}

func (db *DB) ListClients(ctx context.Context, user string) ([]directory.Client, error) {
	if user == "" {
		return queryClients(ctx, db.pool, `true`)
	}
	return queryClients(ctx, db.pool, `u.name = $1`, user)
}

func (db *DB) RevokeClient(ctx context.Context, user, client string, at time.Time) (directory.Client, error) {
	var c directory.Client
	err := db.Write(ctx, func(tx *sql.Tx) error {
		var err error
		c, err = scanClient(tx.QueryRowContext(ctx, `SELECT `+clientCols+` FROM clients c JOIN users u ON u.id = c.user_id
			WHERE u.name = $1 AND c.name = $2 FOR UPDATE OF c`, user, client))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: client %q of user %q", directory.ErrNotFound, client, user)
		}
		if err != nil {
			return err
		}
		if c.Revoked() {
			return nil
		}
		c.RevokedAt = at.UTC().Truncate(time.Millisecond)
		if _, err := tx.ExecContext(ctx, `UPDATE clients SET revoked_at = $1 WHERE id = $2`, at.UnixMilli(), c.ID); err != nil {
			return err
		}
		if err := xactLock(ctx, tx, lockChangeLog); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO change_log (kind, client_id, at) VALUES ($1, $2, $3)`,
			directory.ChangeRevoked, c.ID, at.UnixMilli())
		return err
	})
	return c, err
}

func (db *DB) ClientByTokenHash(ctx context.Context, hash []byte) (directory.Client, error) {
	c, err := scanClient(db.pool.QueryRowContext(ctx, `SELECT `+clientCols+` FROM clients c JOIN users u ON u.id = c.user_id
		WHERE c.token_hash = $1`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return c, directory.ErrNotFound
	}
	return c, err
}

func (db *DB) ClientByID(ctx context.Context, id int64) (directory.Client, error) {
	c, err := scanClient(db.pool.QueryRowContext(ctx, `SELECT `+clientCols+` FROM clients c JOIN users u ON u.id = c.user_id
		WHERE c.id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("%w: client %d", directory.ErrNotFound, id)
	}
	return c, err
}

func (db *DB) Changes(ctx context.Context, after int64, limit int) ([]directory.Change, error) {
	rows, err := db.pool.QueryContext(ctx, `SELECT id, kind, COALESCE(client_id, 0), entries FROM change_log WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []directory.Change
	for rows.Next() {
		var c directory.Change
		if err := rows.Scan(&c.ID, &c.Kind, &c.ClientID, &c.Entries); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// RecordChange appends c (its ID is assigned) to the change log.
func (db *DB) RecordChange(ctx context.Context, c directory.Change, at time.Time) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		var cid any
		if c.ClientID != 0 {
			cid = c.ClientID
		}
		if err := xactLock(ctx, tx, lockChangeLog); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO change_log (kind, client_id, entries, at) VALUES ($1, $2, $3, $4)`,
			c.Kind, cid, c.Entries, at.UnixMilli())
		return err
	})
}
