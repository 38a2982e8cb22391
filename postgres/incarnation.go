package postgres

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"time"
)

// Incarnation is the identity of the store's history (as in sqlite/): clients
// holding marks start them over when it changes. PostgreSQL keeps committed writes
// itself, so the store mints one when its schema is created and keeps it; Mint
// gives it a new one, for an operator who restored an older backup (`mimids store
// mint`). There is no mark file and no commit count.
type Incarnation struct {
	ID     []byte // 16 random bytes
	Minted string // why the last mint happened ("created" for the first)
}

func (db *DB) readIncarnation(ctx context.Context) error {
	if err := db.pool.QueryRowContext(ctx, `SELECT incarnation, mint_reason FROM store_meta WHERE id = 1`).
		Scan(&db.inc.ID, &db.inc.Minted); err != nil {
		return fmt.Errorf("postgres: incarnation: %w", err)
	}
	return nil
}

// Incarnation returns the store's incarnation as Open read it.
func (db *DB) Incarnation() Incarnation { return db.inc }

// Mint gives the store a new incarnation, recording why; nodes running on the
// store keep the old one until they restart.
func (db *DB) Mint(ctx context.Context, reason string) (Incarnation, error) {
	inc := Incarnation{ID: make([]byte, 16), Minted: reason}
	rand.Read(inc.ID)
	err := db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE store_meta SET incarnation = $1, minted_at = $2, mint_reason = $3 WHERE id = 1`,
			inc.ID, time.Now().UnixMilli(), reason)
		return err
	})
	if err != nil {
		return Incarnation{}, fmt.Errorf("postgres: mint: %w", err)
	}
	db.inc = inc
	return inc, nil
}
