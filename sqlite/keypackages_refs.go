package sqlite

import (
	"context"
	"strings"
)

// KnownKeyPackageRefs reports which refs are stored or were served, in one query on a
// read connection (AddKeyPackages checks again when it writes).
func (db *DB) KnownKeyPackageRefs(ctx context.Context, refs [][]byte) ([]bool, error) {
	known := make([]bool, len(refs))
	if len(refs) == 0 {
		return known, nil
	}
	in := strings.TrimSuffix(strings.Repeat("?,", len(refs)), ",")
	args := make([]any, 0, 2*len(refs))
	for range 2 {
		for _, r := range refs {
			args = append(args, r)
		}
	}
	rows, err := db.r.QueryContext(ctx, `SELECT ref FROM key_packages WHERE ref IN (`+in+`)
		UNION SELECT ref FROM served_key_packages WHERE ref IN (`+in+`)`, args...)
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
