package postgres

import (
	"context"
	"database/sql"

	"github.com/mimids/mimids/directory"
)

var _ directory.GatewayKeyStore = (*DB)(nil)

// GatewayKeys returns every stored gateway key, oldest first.
func (db *DB) GatewayKeys(ctx context.Context) ([]directory.StoredGatewayKey, error) {
	rows, err := db.pool.QueryContext(ctx, `SELECT key_id, key, created_at, COALESCE(retired_at, 0) FROM ohttp_keys ORDER BY created_at`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []directory.StoredGatewayKey
	for rows.Next() {
		var k directory.StoredGatewayKey
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

// RotateGatewayKey stores a new key, marks every other active key retired at the new
// key's creation time and deletes the keys listed in drop, in one transaction.
func (db *DB) RotateGatewayKey(ctx context.Context, k directory.StoredGatewayKey, drop []uint8) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		for _, id := range drop {
			if _, err := tx.ExecContext(ctx, `DELETE FROM ohttp_keys WHERE key_id = $1`, id); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE ohttp_keys SET retired_at = $1 WHERE retired_at IS NULL`, k.CreatedAt.UnixMilli()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO ohttp_keys (key_id, key, created_at) VALUES ($1, $2, $3)`,
			k.ID, k.Key, k.CreatedAt.UnixMilli())
		return err
	})
}
