package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mimids/mimids/follower"
)

var _ follower.Routes = (*DB)(nil)

// The follower's routes (migration 0012): first learned wins (INSERT OR IGNORE).

func (db *DB) SetGroupHub(ctx context.Context, groupID []byte, hub string) error {
	return db.insertRoute(ctx, "set group hub",
		`INSERT INTO follower_groups (group_id, hub, learned_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, groupID, hub)
}

func (db *DB) GroupHub(ctx context.Context, groupID []byte) (string, bool, error) {
	return db.route(ctx, "group hub", `SELECT hub FROM follower_groups WHERE group_id = $1`, groupID)
}

func (db *DB) SetPartitionHub(ctx context.Context, digest []byte, hub string) error {
	return db.insertRoute(ctx, "set partition hub",
		`INSERT INTO follower_partitions (key_digest, hub, learned_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, digest, hub)
}

func (db *DB) PartitionHub(ctx context.Context, digest []byte) (string, bool, error) {
	return db.route(ctx, "partition hub", `SELECT hub FROM follower_partitions WHERE key_digest = $1`, digest)
}

func (db *DB) AddClientHub(ctx context.Context, clientID int64, hub string) error {
	return db.insertRoute(ctx, "add client hub",
		`INSERT INTO follower_client_hubs (client_id, hub, learned_at) VALUES ($1, $2, $3)
			ON CONFLICT (client_id, hub) DO UPDATE SET learned_at = excluded.learned_at`, clientID, hub)
}

func (db *DB) ClientHubs(ctx context.Context, clientID int64, limit int) ([]string, error) {
	rows, err := db.pool.QueryContext(ctx, `SELECT hub FROM follower_client_hubs WHERE client_id = $1
		ORDER BY learned_at DESC, hub LIMIT $2`, clientID, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: client hubs: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, fmt.Errorf("postgres: client hubs: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: client hubs: %w", err)
	}
	return out, nil
}

func (db *DB) insertRoute(ctx context.Context, op, q string, key any, hub string) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, q, key, hub, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("postgres: %s: %w", op, err)
		}
		return nil
	})
}

func (db *DB) route(ctx context.Context, op, q string, key []byte) (string, bool, error) {
	var hub string
	err := db.pool.QueryRowContext(ctx, q, key).Scan(&hub)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("postgres: %s: %w", op, err)
	}
	return hub, true, nil
}
