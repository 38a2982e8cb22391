package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/mimids/mimids/directory/mailbox"
)

var _ mailbox.Store = (*DB)(nil)

func (db *DB) EnqueueMailbox(ctx context.Context, t mailbox.Target, kind uint16, payload []byte, at time.Time, published func([]mailbox.Entry)) ([]mailbox.Entry, error) {
	var entries []mailbox.Entry
	at = at.UTC().Truncate(time.Millisecond)
	if payload == nil {
		payload = []byte{}
	}
	fn := func(tx *sql.Tx) error {
		entries = entries[:0]
		var rows *sql.Rows
		var err error
		const bump = `UPDATE clients SET mailbox_seq = mailbox_seq + 1 WHERE revoked_at IS NULL AND `
		switch {
		case t.ClientID != 0:
			rows, err = tx.QueryContext(ctx, bump+`id = ? RETURNING id, mailbox_seq`, t.ClientID)
		case t.UserID != 0:
			rows, err = tx.QueryContext(ctx, bump+`user_id = ? RETURNING id, mailbox_seq`, t.UserID)
		default:
			rows, err = tx.QueryContext(ctx, bump+`1 RETURNING id, mailbox_seq`)
		}
		if err != nil {
			return err
		}
		for rows.Next() {
			e := mailbox.Entry{Kind: kind, EnqueuedAt: at, Payload: payload}
			if err := rows.Scan(&e.ClientID, &e.Seq); err != nil {
				rows.Close()
				return err
			}
			entries = append(entries, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(entries) == 0 {
			return nil
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO mailbox (client_id, seq, kind, enqueued_at, payload) VALUES (?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, e := range entries {
			if _, err := stmt.ExecContext(ctx, e.ClientID, e.Seq, kind, at.UnixMilli(), payload); err != nil {
				return err
			}
		}
		return nil
	}
	var after func()
	if published != nil {
		after = func() { published(entries) }
	}
	if err := db.WriteThen(ctx, fn, after); err != nil {
		return nil, err
	}
	return entries, nil
}

func (db *DB) FetchMailbox(ctx context.Context, clientID int64, after uint64, limit int) ([]mailbox.Entry, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT seq, kind, enqueued_at, payload FROM mailbox
		WHERE client_id = ? AND seq > ? ORDER BY seq LIMIT ?`, clientID, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []mailbox.Entry
	for rows.Next() {
		e := mailbox.Entry{ClientID: clientID}
		var at int64
		if err := rows.Scan(&e.Seq, &e.Kind, &at, &e.Payload); err != nil {
			return nil, err
		}
		e.EnqueuedAt = unixTime(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

func (db *DB) AckMailbox(ctx context.Context, clientID int64, upTo uint64) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM mailbox WHERE client_id = ? AND seq <= ?`, clientID, upTo)
		return err
	})
}

func (db *DB) MailboxStatus(ctx context.Context, clientID int64) (mailbox.Status, error) {
	var s mailbox.Status
	err := db.r.QueryRowContext(ctx, `SELECT count(*), COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM mailbox WHERE client_id = ?`,
		clientID).Scan(&s.Pending, &s.FirstSeq, &s.LastSeq)
	return s, err
}
