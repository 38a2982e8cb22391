package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mimids/mimids/directory"
)

var _ directory.AdminStore = (*DB)(nil)

// The admin dashboard's store (sqlite/admins.go on SQLite): admin passwords, the
// audit log and the users' name search.

func (db *DB) PutAdminPassword(ctx context.Context, p directory.AdminPassword) error {
	_, err := db.pool.ExecContext(ctx, `INSERT INTO admin_passwords (name, hash, read_only, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, read_only = excluded.read_only, updated_at = excluded.updated_at`,
		p.Name, p.Hash, p.ReadOnly, p.UpdatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("postgres: put admin password: %w", err)
	}
	return nil
}

func (db *DB) AdminPassword(ctx context.Context, name string) (directory.AdminPassword, error) {
	p := directory.AdminPassword{Name: name}
	var at int64
	err := db.pool.QueryRowContext(ctx, `SELECT hash, read_only, updated_at FROM admin_passwords WHERE name = $1`, name).
		Scan(&p.Hash, &p.ReadOnly, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return p, directory.ErrNotFound
	}
	if err != nil {
		return p, fmt.Errorf("postgres: admin password: %w", err)
	}
	p.UpdatedAt = unixTime(at)
	return p, nil
}

func (db *DB) AppendAudit(ctx context.Context, e directory.AuditEntry) (directory.AuditEntry, error) {
	err := db.pool.QueryRowContext(ctx, `INSERT INTO admin_audit (at, actor, action, detail) VALUES ($1, $2, $3, $4) RETURNING id`,
		e.At.UnixMilli(), e.Actor, e.Action, e.Detail).Scan(&e.ID)
	if err != nil {
		return e, fmt.Errorf("postgres: append audit: %w", err)
	}
	return e, nil
}

func (db *DB) Audit(ctx context.Context, before int64, limit int) ([]directory.AuditEntry, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := db.pool.QueryContext(ctx, `SELECT id, at, actor, action, detail FROM admin_audit WHERE id < $1 ORDER BY id DESC LIMIT $2`, before, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: audit: %w", err)
	}
	defer rows.Close()
	var out []directory.AuditEntry
	for rows.Next() {
		var e directory.AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Detail); err != nil {
			return nil, fmt.Errorf("postgres: audit: %w", err)
		}
		e.At = unixTime(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// SearchUsers is a range scan of the users' name index: names >= prefix and below
// the prefix's successor, after after (the column's collation is "C": bytewise,
// as on SQLite, whatever the database's).
func (db *DB) SearchUsers(ctx context.Context, prefix, after string, limit int) ([]directory.User, error) {
	lo := max(prefix, after)
	q := `SELECT id, name, created_at FROM users WHERE name >= $1 AND name > $2`
	args := []any{lo, after}
	if prefix != "" {
		q += ` AND name < $3`
		args = append(args, directory.NamePrefixEnd(prefix))
	}
	q += fmt.Sprintf(` ORDER BY name LIMIT $%d`, len(args)+1)
	args = append(args, limit)
	rows, err := db.pool.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: search users: %w", err)
	}
	us, err := scanUsers(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: search users: %w", err)
	}
	return us, nil
}

// MailboxDepth is every entry waiting in a mailbox (the clients' running counts).
func (db *DB) MailboxDepth(ctx context.Context) (int64, error) {
	var n int64
	if err := db.pool.QueryRowContext(ctx, `SELECT COALESCE(sum(mailbox_entries), 0) FROM clients`).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: mailbox depth: %w", err)
	}
	return n, nil
}
