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
		return insertEntries(ctx, tx, entries, kind, at.UnixMilli(), payload)
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

func (db *DB) AckMailbox(ctx context.Context, acks map[int64]uint64) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `DELETE FROM mailbox WHERE client_id = ? AND seq <= ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for id, upTo := range acks {
			if _, err := stmt.ExecContext(ctx, id, upTo); err != nil {
				return err
			}
		}
		return nil
	})
}

func (db *DB) MailboxStatus(ctx context.Context, clientID int64) (mailbox.Status, error) {
	var s mailbox.Status
	err := db.r.QueryRowContext(ctx, `SELECT count(*), COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM mailbox WHERE client_id = ?`,
		clientID).Scan(&s.Pending, &s.FirstSeq, &s.LastSeq)
	return s, err
}

// insertRows is how many entries one INSERT statement carries (5 parameters each,
// well under SQLite's limit of 32766).
const insertRows = 128

var insertSQL = func() [insertRows + 1]string {
	var out [insertRows + 1]string
	for n := 1; n <= insertRows; n++ {
		q := []byte("INSERT INTO mailbox (client_id, seq, kind, enqueued_at, payload) VALUES ")
		for i := 0; i < n; i++ {
			if i > 0 {
				q = append(q, ',')
			}
			q = append(q, "(?,?,?,?,?)"...)
		}
		out[n] = string(q)
	}
	return out
}()

// insertEntries writes entries with multi-row INSERTs.
func insertEntries(ctx context.Context, tx *sql.Tx, entries []mailbox.Entry, kind uint16, at int64, payload []byte) error {
	args := make([]any, 0, 5*min(len(entries), insertRows))
	for len(entries) > 0 {
		n := min(len(entries), insertRows)
		args = args[:0]
		for _, e := range entries[:n] {
			args = append(args, e.ClientID, e.Seq, kind, at, payload)
		}
		if _, err := tx.ExecContext(ctx, insertSQL[n], args...); err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}
