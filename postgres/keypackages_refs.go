package postgres

import (
	"context"
)

// KnownKeyPackageRefs reports which refs are stored or were served, in one query on a
// read connection (AddKeyPackages checks again when it writes).
func (db *DB) KnownKeyPackageRefs(ctx context.Context, refs [][]byte) ([]bool, error) {
	known := make([]bool, len(refs))
	if len(refs) == 0 {
		return known, nil
	}
	rows, err := db.pool.QueryContext(ctx, `SELECT ref FROM key_packages WHERE ref = ANY($1)
		UNION SELECT ref FROM served_key_packages WHERE ref = ANY($1)`, refs)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := make(map[string]bool, len(refs))
	for rows.Next() {
		var ref []byte
		if err := rows.Scan(&ref); err != nil {
			return nil, err
		}
		found[string(ref)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, r := range refs {
		known[i] = found[string(r)]
	}
	return known, nil
}
