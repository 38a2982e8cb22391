package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/mimids/mimids/federation"
)

var _ federation.LeaseStore = (*DB)(nil)

// AcquireLease implements federation.LeaseStore. The conditional upsert takes the
// lease's row lock: of the nodes asking at once, one moves the lease and the
// others see its result.
func (db *DB) AcquireLease(ctx context.Context, peer, node string, now time.Time, ttl time.Duration) (federation.Lease, error) {
	ls := federation.Lease{Peer: peer}
	err := db.Write(ctx, func(tx *sql.Tx) error {
		// SET reads the row as it was: the epoch moves only with the owner.
		if _, err := tx.ExecContext(ctx, `INSERT INTO federation_leases (peer, owner, expires_at, epoch) VALUES ($1, $2, $3, 1)
			ON CONFLICT (peer) DO UPDATE SET
				epoch = CASE WHEN federation_leases.owner = excluded.owner THEN federation_leases.epoch ELSE federation_leases.epoch + 1 END,
				owner = excluded.owner, expires_at = excluded.expires_at
			WHERE federation_leases.owner = excluded.owner OR federation_leases.expires_at <= $4`,
			peer, node, now.Add(ttl).UnixMilli(), now.UnixMilli()); err != nil {
			return err
		}
		var exp, epoch int64
		if err := tx.QueryRowContext(ctx, `SELECT owner, expires_at, epoch FROM federation_leases WHERE peer = $1`, peer).
			Scan(&ls.Owner, &exp, &epoch); err != nil {
			return err
		}
		ls.Expires, ls.Epoch = unixTime(exp), uint64(epoch)
		return nil
	})
	if err != nil {
		return federation.Lease{}, fmt.Errorf("postgres: acquire lease %s: %w", peer, err)
	}
	return ls, nil
}

// ReleaseLease implements federation.LeaseStore.
func (db *DB) ReleaseLease(ctx context.Context, peer, node string) error {
	err := db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE federation_leases SET expires_at = 0 WHERE peer = $1 AND owner = $2`, peer, node)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: release lease %s: %w", peer, err)
	}
	return nil
}

// Leases implements federation.LeaseStore.
func (db *DB) Leases(ctx context.Context) ([]federation.Lease, error) {
	rows, err := db.pool.QueryContext(ctx, `SELECT peer, owner, expires_at, epoch FROM federation_leases ORDER BY peer`)
	if err != nil {
		return nil, fmt.Errorf("postgres: leases: %w", err)
	}
	defer rows.Close()
	var out []federation.Lease
	for rows.Next() {
		var ls federation.Lease
		var exp, epoch int64
		if err := rows.Scan(&ls.Peer, &ls.Owner, &exp, &epoch); err != nil {
			return nil, fmt.Errorf("postgres: leases: %w", err)
		}
		ls.Expires, ls.Epoch = unixTime(exp), uint64(epoch)
		out = append(out, ls)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: leases: %w", err)
	}
	return out, nil
}
