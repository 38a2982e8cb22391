package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/mimids/mimids/directory"
)

var _ directory.AdminStore = (*DB)(nil)

func (db *DB) PutAdminPassword(ctx context.Context, p directory.AdminPassword) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO admin_passwords (name, hash, read_only, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, read_only = excluded.read_only, updated_at = excluded.updated_at`,
			p.Name, p.Hash, p.ReadOnly, p.UpdatedAt.UnixMilli())
		return err
	})
}

func (db *DB) AdminPassword(ctx context.Context, name string) (directory.AdminPassword, error) {
	p := directory.AdminPassword{Name: name}
	var at int64
	err := db.r.QueryRowContext(ctx, `SELECT hash, read_only, updated_at FROM admin_passwords WHERE name = ?`, name).
		Scan(&p.Hash, &p.ReadOnly, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return p, directory.ErrNotFound
	}
	p.UpdatedAt = unixTime(at)
	return p, err
}

func (db *DB) AppendAudit(ctx context.Context, e directory.AuditEntry) (directory.AuditEntry, error) {
	err := db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO admin_audit (at, actor, action, detail) VALUES (?, ?, ?, ?)`,
			e.At.UnixMilli(), e.Actor, e.Action, e.Detail)
		if err != nil {
			return err
		}
		e.ID, err = res.LastInsertId()
		return err
	})
	return e, err
}

func (db *DB) Audit(ctx context.Context, before int64, limit int) ([]directory.AuditEntry, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := db.r.QueryContext(ctx, `SELECT id, at, actor, action, detail FROM admin_audit WHERE id < ? ORDER BY id DESC LIMIT ?`, before, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []directory.AuditEntry
	for rows.Next() {
		var e directory.AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Detail); err != nil {
			return nil, err
		}
		e.At = unixTime(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// SearchUsers is a range scan of the users' name index: names >= prefix and below
// the prefix's successor, after after.
func (db *DB) SearchUsers(ctx context.Context, prefix, after string, limit int) ([]directory.User, error) {
	lo := max(prefix, after)
	q := `SELECT id, name, created_at FROM users WHERE name >= ? AND name > ?`
	args := []any{lo, after}
	if prefix != "" {
		q += ` AND name < ?`
		args = append(args, directory.NamePrefixEnd(prefix))
	}
	q += ` ORDER BY name LIMIT ?`
	args = append(args, limit)
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return scanUsers(rows)
}

// MailboxDepth is every entry waiting in a mailbox (the clients' running counts).
func (db *DB) MailboxDepth(ctx context.Context) (int64, error) {
	var n int64
	err := db.r.QueryRowContext(ctx, `SELECT COALESCE(sum(mailbox_entries), 0) FROM clients`).Scan(&n)
	return n, err
}
