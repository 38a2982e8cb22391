package postgres

import (
	"context"
	"database/sql"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/protocol"
)

var _ directory.PolicyStore = (*DB)(nil)

func (db *DB) AddBan(ctx context.Context, b directory.Ban) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO hub_bans (user_uri, reason, at) VALUES ($1, $2, $3)
			ON CONFLICT (user_uri) DO UPDATE SET reason = excluded.reason, at = excluded.at`, b.UserURI, b.Reason, b.At.UnixMilli())
		return err
	})
}

func (db *DB) RemoveBan(ctx context.Context, userURI string) (bool, error) {
	var removed bool
	err := db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM hub_bans WHERE user_uri = $1`, userURI)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		removed = n > 0
		return err
	})
	return removed, err
}

func (db *DB) Bans(ctx context.Context) ([]directory.Ban, error) {
	rows, err := db.pool.QueryContext(ctx, `SELECT user_uri, reason, at FROM hub_bans ORDER BY user_uri`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []directory.Ban
	for rows.Next() {
		var b directory.Ban
		var at int64
		if err := rows.Scan(&b.UserURI, &b.Reason, &at); err != nil {
			return nil, err
		}
		b.At = unixTime(at)
		out = append(out, b)
	}
	return out, rows.Err()
}

func (db *DB) AddReport(ctx context.Context, r directory.StoredReport) (int64, error) {
	var id int64
	err := db.Write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO hub_reports (at, reporter_client, reporter_user, kind, group_id, subject, reason)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`, r.At.UnixMilli(), r.ReporterClient, r.ReporterUser, int(r.Kind),
			nonNil(r.GroupID), nonNil(r.Subject), r.Reason).Scan(&id)
	})
	return id, err
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func (db *DB) Reports(ctx context.Context, limit int) ([]directory.StoredReport, error) {
	rows, err := db.pool.QueryContext(ctx, `SELECT id, at, reporter_client, reporter_user, kind, group_id, subject, reason
		FROM hub_reports ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []directory.StoredReport
	for rows.Next() {
		var r directory.StoredReport
		var at int64
		var kind int
		if err := rows.Scan(&r.ID, &at, &r.ReporterClient, &r.ReporterUser, &kind, &r.GroupID, &r.Subject, &r.Reason); err != nil {
			return nil, err
		}
		r.At, r.Kind = unixTime(at), protocol.ReportKind(kind)
		out = append(out, r)
	}
	return out, rows.Err()
}
