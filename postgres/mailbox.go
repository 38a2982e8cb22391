package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/mimids/mimids/directory/mailbox"
)

var _ mailbox.Store = (*DB)(nil)

func (db *DB) EnqueueMailbox(ctx context.Context, t mailbox.Target, kind uint16, payload []byte, at time.Time, q mailbox.Quota, published func([]mailbox.Entry)) (mailbox.Enqueued, error) {
	var res mailbox.Enqueued
	at = at.UTC().Truncate(time.Millisecond)
	if payload == nil {
		payload = []byte{}
	}
	// $1, $2, $3: the quota and the entry's size; $4: the target's id (if any).
	target, targetArgs := mailboxTarget(t)
	size := int64(len(payload))
	args := append([]any{q.MaxEntries, size, q.MaxBytes}, targetArgs...)
	// room: one more entry of size bytes fits the quota.
	const room = ` AND mailbox_entries + 1 <= $1 AND mailbox_bytes + $2 <= $3`
	fn := func(tx *sql.Tx) error {
		res = mailbox.Enqueued{Entries: res.Entries[:0]}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM clients WHERE revoked_at IS NULL AND `+target+
			` AND NOT (true`+room+`)`, args...).Scan(&res.Full); err != nil {
			return err
		}
		// Each recipient's row lock, held until the commit, orders the seqs that
		// every node gives its entries.
		rows, err := tx.QueryContext(ctx, `UPDATE clients SET mailbox_seq = mailbox_seq + 1, mailbox_entries = mailbox_entries + 1,
			mailbox_bytes = mailbox_bytes + $2 WHERE revoked_at IS NULL AND `+target+room+` RETURNING id, mailbox_seq`, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			e := mailbox.Entry{Kind: kind, EnqueuedAt: at, Payload: payload}
			if err := rows.Scan(&e.ClientID, &e.Seq); err != nil {
				rows.Close()
				return err
			}
			res.Entries = append(res.Entries, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(res.Entries) == 0 {
			return nil
		}
		return insertEntries(ctx, tx, res.Entries, kind, at.UnixMilli(), payload)
	}
	var after func()
	if published != nil {
		after = func() {
			if len(res.Entries) > 0 {
				published(res.Entries)
			}
		}
	}
	if err := db.writeThen(ctx, mailboxKey(t), fn, after); err != nil {
		return mailbox.Enqueued{}, err
	}
	return res, nil
}

// mailboxTarget is the condition on clients that selects t's recipients.
func mailboxTarget(t mailbox.Target) (string, []any) {
	switch {
	case t.ClientID != 0:
		return `id = $4`, []any{t.ClientID}
	case t.UserID != 0:
		return `user_id = $4`, []any{t.UserID}
	default:
		return `true`, nil
	}
}

func (db *DB) FetchMailbox(ctx context.Context, clientID int64, after uint64, limit int) ([]mailbox.Entry, error) {
	rows, err := db.pool.QueryContext(ctx, `SELECT seq, kind, enqueued_at, payload FROM mailbox
		WHERE client_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, clientID, after, limit)
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
		// Free the room of the entries first, while they are still there to count.
		free, err := tx.PrepareContext(ctx, `UPDATE clients SET (mailbox_entries, mailbox_bytes) =
			(SELECT clients.mailbox_entries - count(*), clients.mailbox_bytes - COALESCE(sum(length(payload)), 0)
			 FROM mailbox WHERE client_id = $1 AND seq <= $2) WHERE id = $1`)
		if err != nil {
			return err
		}
		defer free.Close()
		del, err := tx.PrepareContext(ctx, `DELETE FROM mailbox WHERE client_id = $1 AND seq <= $2`)
		if err != nil {
			return err
		}
		defer del.Close()
		for id, upTo := range acks {
			if _, err := free.ExecContext(ctx, id, upTo); err != nil {
				return err
			}
			if _, err := del.ExecContext(ctx, id, upTo); err != nil {
				return err
			}
		}
		return nil
	})
}

func (db *DB) MailboxStatus(ctx context.Context, clientID int64) (mailbox.Status, error) {
	var s mailbox.Status
	err := db.pool.QueryRowContext(ctx, `SELECT count(*), COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM mailbox WHERE client_id = $1`,
		clientID).Scan(&s.Pending, &s.FirstSeq, &s.LastSeq)
	return s, err
}

func (db *DB) MailboxUsage(ctx context.Context, clientID int64) (mailbox.Usage, error) {
	var u mailbox.Usage
	err := db.pool.QueryRowContext(ctx, `SELECT mailbox_entries, mailbox_bytes FROM clients WHERE id = $1`, clientID).Scan(&u.Entries, &u.Bytes)
	if errors.Is(err, sql.ErrNoRows) {
		return mailbox.Usage{}, nil
	}
	return u, err
}

// insertRows is how many entries one INSERT statement carries (5 parameters each,
// well under PostgreSQL's limit of 65535).
const insertRows = 128

var insertSQL = func() [insertRows + 1]string {
	var out [insertRows + 1]string
	for n := 1; n <= insertRows; n++ {
		q := []byte("INSERT INTO mailbox (client_id, seq, kind, enqueued_at, payload) VALUES ")
		for i := 0; i < n; i++ {
			if i > 0 {
				q = append(q, ',')
			}
			q = fmt.Appendf(q, "($%d,$%d,$%d,$%d,$%d)", 5*i+1, 5*i+2, 5*i+3, 5*i+4, 5*i+5)
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

// mailboxKey is the ordering key of an enqueue: its client's, or every client's
// for a user or everyone (rarer: a broadcast, a user's notice).
func mailboxKey(t mailbox.Target) string {
	if t.ClientID != 0 {
		return "m" + strconv.FormatInt(t.ClientID, 10)
	}
	return "m*"
}
