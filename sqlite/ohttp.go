package sqlite

import (
	"context"
	"database/sql"
	"time"
)

// OHTTPKey is a stored gateway key.
type OHTTPKey struct {
	ID        uint8
	Key       []byte // ohttp.Key.MarshalBinary
	CreatedAt time.Time
	RetiredAt time.Time // zero while active
}

// OHTTPKeys returns every stored gateway key.
func (db *DB) OHTTPKeys(ctx context.Context) ([]OHTTPKey, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT key_id, key, created_at, COALESCE(retired_at, 0) FROM ohttp_keys ORDER BY created_at`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []OHTTPKey
	for rows.Next() {
		var k OHTTPKey
		var created, retired int64
		if err := rows.Scan(&k.ID, &k.Key, &created, &retired); err != nil {
			return nil, err
		}
		k.CreatedAt = unixTime(created)
		if retired != 0 {
			k.RetiredAt = unixTime(retired)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RotateOHTTPKey stores a new key, marks every other active key retired at the new
// key's creation time and deletes the keys listed in drop, in one transaction.
func (db *DB) RotateOHTTPKey(ctx context.Context, k OHTTPKey, drop []uint8) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		for _, id := range drop {
			if _, err := tx.ExecContext(ctx, `DELETE FROM ohttp_keys WHERE key_id = ?`, id); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE ohttp_keys SET retired_at = ? WHERE retired_at IS NULL`, k.CreatedAt.UnixMilli()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO ohttp_keys (key_id, key, created_at) VALUES (?, ?, ?)`,
			k.ID, k.Key, k.CreatedAt.UnixMilli())
		return err
	})
}
