package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/protocol"
)

var _ federation.Store = (*DB)(nil)

// Ids and streams are uint64 on the wire and INTEGER (int64) here: ids stay far
// below 2^63, and a stream keeps its 64 bits through the conversion.

func (db *DB) PutPeer(ctx context.Context, p federation.Peer) error {
	var ca, pin any
	if p.CA != nil {
		ca = p.CA
	}
	if p.Pin != nil {
		pin = p.Pin
	}
	return db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO federation_peers (domain, url, ca_pem, pin, out_stream, added_at)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (domain) DO UPDATE SET url = excluded.url, ca_pem = excluded.ca_pem, pin = excluded.pin`,
			p.Domain, p.URL, ca, pin, int64(p.Stream), p.AddedAt.UnixMilli())
		if err != nil {
			return fmt.Errorf("postgres: put peer %s: %w", p.Domain, err)
		}
		return nil
	})
}

const peerColumns = `domain, url, ca_pem, pin, out_stream, added_at`

func scanPeer(sc interface{ Scan(...any) error }) (federation.Peer, error) {
	var p federation.Peer
	var stream, added int64
	if err := sc.Scan(&p.Domain, &p.URL, &p.CA, &p.Pin, &stream, &added); err != nil {
		return p, err
	}
	p.Stream, p.AddedAt = uint64(stream), unixTime(added)
	return p, nil
}

func (db *DB) Peer(ctx context.Context, domain string) (federation.Peer, error) {
	p, err := scanPeer(db.pool.QueryRowContext(ctx, `SELECT `+peerColumns+` FROM federation_peers WHERE domain = $1`, domain))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("%w: %s", federation.ErrUnknownPeer, domain)
	}
	if err != nil {
		return p, fmt.Errorf("postgres: peer %s: %w", domain, err)
	}
	return p, nil
}

func (db *DB) Peers(ctx context.Context) ([]federation.Peer, error) {
	rows, err := db.pool.QueryContext(ctx, `SELECT `+peerColumns+` FROM federation_peers ORDER BY domain`)
	if err != nil {
		return nil, fmt.Errorf("postgres: peers: %w", err)
	}
	defer rows.Close()
	var out []federation.Peer
	for rows.Next() {
		p, err := scanPeer(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: peers: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func (db *DB) RemovePeer(ctx context.Context, domain string) (bool, error) {
	var n int64
	err := db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM federation_peers WHERE domain = $1`, domain)
		if err != nil {
			return fmt.Errorf("postgres: remove peer %s: %w", domain, err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return n > 0, err
}

func (db *DB) SetPeerStatus(ctx context.Context, s federation.PeerStatus) error {
	var errAt sql.NullInt64
	if !s.LastErrorAt.IsZero() {
		errAt = sql.NullInt64{Int64: s.LastErrorAt.UnixMilli(), Valid: true}
	}
	return db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO federation_peer_status
			(peer, state, dialer, since, last_error, last_error_at, attempts, updated_at)
			SELECT domain, $1, $2, $3, $4, $5, $6, $7 FROM federation_peers WHERE domain = $8
			ON CONFLICT (peer) DO UPDATE SET state = excluded.state, dialer = excluded.dialer,
				since = excluded.since, last_error = excluded.last_error, last_error_at = excluded.last_error_at,
				attempts = excluded.attempts, updated_at = excluded.updated_at`,
			string(s.State), s.Dialer, s.Since.UnixMilli(), s.LastError, errAt, s.Attempts, s.UpdatedAt.UnixMilli(), s.Domain)
		if err != nil {
			return fmt.Errorf("postgres: set peer status %s: %w", s.Domain, err)
		}
		return nil
	})
}

func (db *DB) PeerStatuses(ctx context.Context) ([]federation.PeerStatus, error) {
	rows, err := db.pool.QueryContext(ctx, `SELECT peer, state, dialer, since, last_error, last_error_at, attempts, updated_at
		FROM federation_peer_status ORDER BY peer`)
	if err != nil {
		return nil, fmt.Errorf("postgres: peer statuses: %w", err)
	}
	defer rows.Close()
	var out []federation.PeerStatus
	for rows.Next() {
		var s federation.PeerStatus
		var state string
		var since, updated int64
		var errAt sql.NullInt64
		if err := rows.Scan(&s.Domain, &state, &s.Dialer, &since, &s.LastError, &errAt, &s.Attempts, &updated); err != nil {
			return nil, fmt.Errorf("postgres: peer statuses: %w", err)
		}
		s.State, s.Since, s.LastErrorAt, s.UpdatedAt = federation.LinkState(state), unixTime(since), nullTime(errAt), unixTime(updated)
		out = append(out, s)
	}
	return out, rows.Err()
}

func (db *DB) Enqueue(ctx context.Context, peer string, typ protocol.EnvelopeType, body []byte, at time.Time, committed func(id uint64)) (uint64, error) {
	if body == nil {
		body = []byte{}
	}
	var id int64
	var after func()
	if committed != nil {
		after = func() { committed(uint64(id)) }
	}
	err := db.writeThen(ctx, "f"+peer, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `UPDATE federation_peers SET next_id = next_id + 1 WHERE domain = $1 RETURNING next_id - 1`,
			peer).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %s", federation.ErrUnknownPeer, peer)
		}
		if err != nil {
			return fmt.Errorf("postgres: enqueue for %s: %w", peer, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO federation_outbound (peer, id, type, body, enqueued_at) VALUES ($1, $2, $3, $4, $5)`,
			peer, id, int(typ), body, at.UnixMilli()); err != nil {
			return fmt.Errorf("postgres: enqueue for %s: %w", peer, err)
		}
		return nil
	}, after)
	if err != nil {
		return 0, err
	}
	return uint64(id), nil
}

func (db *DB) Pending(ctx context.Context, peer string, after uint64, limit, maxBytes int) ([]federation.Queued, error) {
	rows, err := db.pool.QueryContext(ctx, `SELECT id, type, body, enqueued_at FROM federation_outbound
		WHERE peer = $1 AND id > $2 ORDER BY id LIMIT $3`, peer, int64(after), limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: pending for %s: %w", peer, err)
	}
	defer rows.Close()
	var out []federation.Queued
	size := 0
	for rows.Next() && (len(out) == 0 || size < maxBytes) {
		var q federation.Queued
		var id, at int64
		var typ int
		if err := rows.Scan(&id, &typ, &q.Body, &at); err != nil {
			return nil, fmt.Errorf("postgres: pending for %s: %w", peer, err)
		}
		if len(out) > 0 && size+len(q.Body) > maxBytes {
			break
		}
		q.ID, q.Type, q.EnqueuedAt = uint64(id), protocol.EnvelopeType(typ), unixTime(at)
		size += len(q.Body)
		out = append(out, q)
	}
	return out, rows.Err()
}

func (db *DB) Acked(ctx context.Context, peer string, ids []uint64, fn func(ctx context.Context, removed []uint64) error) ([]uint64, error) {
	var removed []uint64
	err := db.writeJoined(ctx, func(jctx context.Context, tx *sql.Tx) error {
		removed = removed[:0]
		for rest := ids; len(rest) > 0; {
			n := min(len(rest), 500)
			args := make([]any, 0, n+1)
			args = append(args, peer)
			for _, id := range rest[:n] {
				args = append(args, int64(id))
			}
			rows, err := tx.QueryContext(ctx, `DELETE FROM federation_outbound WHERE peer = $1 AND id = ANY($2) RETURNING id`,
				peer, args[1:])
			if err != nil {
				return fmt.Errorf("postgres: acked for %s: %w", peer, err)
			}
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return fmt.Errorf("postgres: acked for %s: %w", peer, err)
				}
				removed = append(removed, uint64(id))
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("postgres: acked for %s: %w", peer, err)
			}
			rest = rest[n:]
		}
		slices.Sort(removed)
		if fn != nil {
			return fn(jctx, removed)
		}
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	return removed, nil
}

func (db *DB) QueueStats(ctx context.Context) ([]federation.QueueStats, error) {
	rows, err := db.pool.QueryContext(ctx, `SELECT peer, count(*), COALESCE(SUM(length(body)), 0), MIN(enqueued_at)
		FROM federation_outbound GROUP BY peer ORDER BY peer`)
	if err != nil {
		return nil, fmt.Errorf("postgres: queue stats: %w", err)
	}
	defer rows.Close()
	var out []federation.QueueStats
	for rows.Next() {
		var s federation.QueueStats
		var oldest int64
		if err := rows.Scan(&s.Peer, &s.Depth, &s.Bytes, &oldest); err != nil {
			return nil, fmt.Errorf("postgres: queue stats: %w", err)
		}
		s.Oldest = unixTime(oldest)
		out = append(out, s)
	}
	return out, rows.Err()
}

func (db *DB) InboxState(ctx context.Context, peer string) (stream, highest uint64, err error) {
	var s, h int64
	err = db.pool.QueryRowContext(ctx, `SELECT stream, highest FROM federation_inbox_streams WHERE peer = $1`, peer).Scan(&s, &h)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("postgres: inbox state %s: %w", peer, err)
	}
	return uint64(s), uint64(h), nil
}

func (db *DB) ResetInbox(ctx context.Context, peer string, stream uint64) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM federation_inbox WHERE peer = $1`, peer); err != nil {
			return fmt.Errorf("postgres: reset inbox %s: %w", peer, err)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO federation_inbox_streams (peer, stream, highest)
			SELECT domain, $1, 0 FROM federation_peers WHERE domain = $2
			ON CONFLICT (peer) DO UPDATE SET stream = excluded.stream, highest = 0`, int64(stream), peer)
		if err != nil {
			return fmt.Errorf("postgres: reset inbox %s: %w", peer, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %s", federation.ErrUnknownPeer, peer)
		}
		return nil
	})
}

func (db *DB) Reply(ctx context.Context, peer string, id uint64) (federation.Reply, bool, error) {
	return replyIn(ctx, db.pool, peer, id)
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func replyIn(ctx context.Context, q queryRower, peer string, id uint64) (federation.Reply, bool, error) {
	var r federation.Reply
	var code int
	err := q.QueryRowContext(ctx, `SELECT code, body FROM federation_inbox WHERE peer = $1 AND id = $2`, peer, int64(id)).Scan(&code, &r.Body)
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("postgres: reply %s/%d: %w", peer, id, err)
	}
	r.Code = protocol.Code(code)
	return r, true, nil
}

func (db *DB) Record(ctx context.Context, peer string, id uint64, fn func(ctx context.Context) ([]byte, error)) (federation.Reply, error) {
	var rep federation.Reply
	err := db.writeJoined(ctx, func(jctx context.Context, tx *sql.Tx) error {
		prev, ok, err := replyIn(ctx, tx, peer, id)
		if err != nil {
			return err
		}
		if ok {
			rep = prev
			return nil
		}
		if rep, err = applyIn(jctx, tx, fn); err != nil {
			return err
		}
		return recordIn(ctx, tx, peer, id, rep)
	}, nil)
	if err != nil {
		return federation.Reply{}, err
	}
	return rep, nil
}

// applyIn runs fn in a savepoint of tx: a refusal (an error with a wire code other
// than internal) undoes fn's writes and becomes the reply.
func applyIn(ctx context.Context, tx *sql.Tx, fn func(ctx context.Context) ([]byte, error)) (federation.Reply, error) {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT fed_apply`); err != nil {
		return federation.Reply{}, fmt.Errorf("postgres: apply: %w", err)
	}
	body, err := fn(ctx)
	if err == nil {
		if _, err := tx.ExecContext(ctx, `RELEASE fed_apply`); err != nil {
			return federation.Reply{}, fmt.Errorf("postgres: apply: %w", err)
		}
		return federation.Reply{Body: body}, nil
	}
	if !protocol.Refusal(err) {
		return federation.Reply{}, err // the enclosing transaction rolls back
	}
	code, _ := protocol.CodeOf(err)
	if _, rerr := tx.ExecContext(ctx, `ROLLBACK TO fed_apply; RELEASE fed_apply`); rerr != nil {
		return federation.Reply{}, errors.Join(err, rerr)
	}
	return federation.Reply{Code: code, Body: []byte(err.Error())}, nil
}

func recordIn(ctx context.Context, tx *sql.Tx, peer string, id uint64, rep federation.Reply) error {
	body := rep.Body
	if body == nil {
		body = []byte{}
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO federation_inbox_streams (peer, stream, highest)
		SELECT domain, 0, $1 FROM federation_peers WHERE domain = $2
		ON CONFLICT (peer) DO UPDATE SET highest = GREATEST(federation_inbox_streams.highest, excluded.highest)`, int64(id), peer)
	if err != nil {
		return fmt.Errorf("postgres: record %s/%d: %w", peer, id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %s", federation.ErrUnknownPeer, peer)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO federation_inbox (peer, id, code, body) VALUES ($1, $2, $3, $4)`,
		peer, int64(id), int(rep.Code), body); err != nil {
		return fmt.Errorf("postgres: record %s/%d: %w", peer, id, err)
	}
	if id > protocol.DedupRetention {
		if _, err := tx.ExecContext(ctx, `DELETE FROM federation_inbox WHERE peer = $1 AND id <= $2`,
			peer, int64(id-protocol.DedupRetention)); err != nil {
			return fmt.Errorf("postgres: record %s/%d: %w", peer, id, err)
		}
	}
	return nil
}
