package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

var _ directory.KeyPackageStore = (*DB)(nil)

// The claim's statements. take skips rows that a concurrent claim (of this node
// or another) holds: two claims never serve the same KeyPackage, and neither
// waits for the other's commit to find another.
const (
	pickSQL = `SELECT s.client_id, s.available FROM clients c
		JOIN key_package_counts s ON s.client_id = c.id AND s.cipher_suite = $1 AND s.version = $2
		WHERE c.user_id = $3 AND c.revoked_at IS NULL AND s.available > 0
		ORDER BY s.available DESC, c.id LIMIT $4`
	takeSQL = `DELETE FROM key_packages WHERE id = (SELECT id FROM key_packages
		WHERE client_id = $1 AND cipher_suite = $2 AND version = $3 AND NOT last_resort ORDER BY not_after, id LIMIT 1
		FOR UPDATE SKIP LOCKED)
		RETURNING ref, not_after, data, leaf_key_hash`
	servedSQL = `INSERT INTO served_key_packages (ref, client_id, served_at, not_after, leaf_key_hash) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (ref) DO UPDATE SET served_at = excluded.served_at, serves = served_key_packages.serves + 1`
)

// claimTx is one claim transaction with its statements bound to it.
type claimTx struct {
	tx *sql.Tx
	// servedBy holds, per user, version and suite, the clients that served a request
	// of this call: the next request for the same is served by another client.
	servedBy map[claimKey]map[int64]bool
}

type claimKey struct {
	user    int64
	version mls.ProtocolVersion
	suite   mls.CipherSuite
}

// purgeBatch bounds the rows one purge transaction deletes, so that a large purge does
// not hold the writer for long.
const purgeBatch = 5000

func (db *DB) AddKeyPackages(ctx context.Context, clientID int64, kps []directory.StoredKeyPackage, maxPerClient, lowThreshold int, now time.Time) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		var revoked sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT revoked_at FROM clients WHERE id = $1 FOR UPDATE`, clientID).Scan(&revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: client %d", directory.ErrNotFound, clientID)
		}
		if err != nil {
			return err
		}
		if revoked.Valid {
			return directory.ErrBadToken
		}
		nowS := now.Unix()
		// The client's expired KeyPackages do not count against its limit.
		if _, err := tx.ExecContext(ctx, `DELETE FROM key_packages WHERE client_id = $1 AND not_after < $2`, clientID, nowS); err != nil {
			return err
		}
		for i := range kps {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM key_packages WHERE ref = $1)
				+ (SELECT count(*) FROM served_key_packages WHERE ref = $1)`, kps[i].Ref).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return &directory.UploadError{Index: i, Err: directory.ErrDuplicateKeyPackage}
			}
		}
		suites := make(map[mls.CipherSuite]mls.ProtocolVersion)
		for i := range kps {
			kp := &kps[i]
			if kp.LastResort {
				if _, err := tx.ExecContext(ctx, `DELETE FROM key_packages WHERE client_id = $1 AND cipher_suite = $2 AND last_resort`,
					clientID, kp.CipherSuite); err != nil {
					return err
				}
			} else {
				suites[kp.CipherSuite] = kp.Version
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO key_packages (ref, client_id, version, cipher_suite, last_resort, not_after, uploaded_at, data, leaf_key_hash)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, kp.Ref, clientID, kp.Version, kp.CipherSuite, kp.LastResort,
				kp.NotAfter.Unix(), now.UnixMilli(), kp.Data, kp.LeafKeyHash)
			if isUnique(err) {
				return &directory.UploadError{Index: i, Err: directory.ErrDuplicateKeyPackage}
			}
			if err != nil {
				return err
			}
		}
		var total int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM key_packages WHERE client_id = $1`, clientID).Scan(&total); err != nil {
			return err
		}
		if total > maxPerClient {
			return &directory.UploadError{Index: -1, Err: fmt.Errorf("%w: %d stored after this upload, limit %d",
				directory.ErrKeyPackageLimit, total, maxPerClient)}
		}
		for suite, version := range suites {
			n, err := countAvailable(ctx, tx, clientID, version, suite, nowS)
			if err != nil {
				return err
			}
			if n >= lowThreshold {
				if _, err := tx.ExecContext(ctx, `DELETE FROM key_package_low WHERE client_id = $1 AND cipher_suite = $2`, clientID, suite); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func countAvailable(ctx context.Context, tx *sql.Tx, clientID int64, v mls.ProtocolVersion, suite mls.CipherSuite, nowS int64) (int, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM key_packages WHERE client_id = $1 AND cipher_suite = $2 AND version = $3
		AND NOT last_resort AND not_after >= $4`, clientID, suite, v, nowS).Scan(&n)
	return n, err
}

func (db *DB) KeyPackageStock(ctx context.Context, clientID int64, now time.Time) ([]protocol.KeyPackageStock, error) {
	rows, err := db.pool.QueryContext(ctx, `SELECT cipher_suite, count(*) FILTER (WHERE NOT last_resort), bool_or(last_resort)
		FROM key_packages WHERE client_id = $1 AND not_after >= $2 GROUP BY cipher_suite ORDER BY cipher_suite`, clientID, now.Unix())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []protocol.KeyPackageStock
	for rows.Next() {
		var s protocol.KeyPackageStock
		if err := rows.Scan(&s.CipherSuite, &s.Available, &s.LastResort); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func (db *DB) ClaimKeyPackages(ctx context.Context, reqs []directory.ClaimRequest, lowThreshold int, now time.Time) ([]directory.Claim, error) {
	var claims []directory.Claim
	err := db.Write(ctx, func(tx *sql.Tx) error {
		ct := &claimTx{tx: tx, servedBy: map[claimKey]map[int64]bool{}}
		claims = make([]directory.Claim, len(reqs))
		for i, r := range reqs {
			k := claimKey{r.UserID, r.Version, r.CipherSuite}
			skip := ct.servedBy[k]
			c, err := ct.claimOne(ctx, r, skip, lowThreshold, now)
			if err != nil {
				return err
			}
			if c.Err == nil {
				if skip == nil {
					skip = map[int64]bool{}
					ct.servedBy[k] = skip
				}
				skip[c.KeyPackage.ClientID] = true
			}
			claims[i] = c
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return claims, nil
}

// claimOne answers one request inside the claim transaction, from a client not in
// skip. A request that cannot be served is a Claim with Err set; only a database
// failure is an error.
func (ct *claimTx) claimOne(ctx context.Context, r directory.ClaimRequest, skip map[int64]bool, lowThreshold int, now time.Time) (directory.Claim, error) {
	tx := ct.tx
	nowS, nowMS := now.Unix(), now.UnixMilli()
	if r.LastResortOnly {
		return ct.claimLastResort(ctx, r, skip, lowThreshold, now)
	}
	orig := skip
	var kp directory.StoredKeyPackage
	var stock int
	for attempt := 0; ; attempt++ {
		if attempt == 64 {
			return directory.Claim{}, errors.New("claim: expired KeyPackages kept turning up")
		}
		clientID, n, found, err := ct.pickClient(ctx, r, skip)
		if err != nil {
			return directory.Claim{}, err
		}
		if !found {
			return ct.claimLastResort(ctx, r, orig, lowThreshold, now)
		}
		stock = n
		var expired bool
		kp, expired, err = ct.takeSoonest(ctx, clientID, r, nowS)
		if errors.Is(err, errTaken) {
			// Concurrent claims hold every one of this client's: try another.
			skip = maps.Clone(skip)
			if skip == nil {
				skip = map[int64]bool{}
			}
			skip[clientID] = true
			continue
		}
		if err != nil {
			return directory.Claim{}, err
		}
		if !expired {
			break
		}
		// The counts include expired KeyPackages until they are deleted: drop this
		// client's and pick again.
		if _, err := tx.ExecContext(ctx, `DELETE FROM key_packages WHERE client_id = $1 AND cipher_suite = $2 AND version = $3
			AND NOT last_resort AND not_after < $4`, clientID, r.CipherSuite, r.Version, nowS); err != nil {
			return directory.Claim{}, err
		}
	}
	if _, err := tx.ExecContext(ctx, servedSQL, kp.Ref, kp.ClientID, nowMS, kp.NotAfter.Unix(), kp.LeafKeyHash); err != nil {
		return directory.Claim{}, err
	}
	c := directory.Claim{KeyPackage: kp, Remaining: stock - 1}
	var err error
	if c.Low, err = markLow(ctx, tx, kp.ClientID, r.CipherSuite, c.Remaining, lowThreshold, nowMS); err != nil || c.Remaining >= lowThreshold {
		return c, err
	}
	// A one-time KeyPackage was served: the client is no longer exhausted.
	_, err = tx.ExecContext(ctx, `UPDATE key_package_low SET exhausted_at = NULL WHERE client_id = $1 AND cipher_suite = $2
		AND exhausted_at IS NOT NULL`, kp.ClientID, r.CipherSuite)
	return c, err
}

// pickClient finds the client not in skip with the most non-last-resort KeyPackages of
// the version and suite, and that count (which may include expired ones).
func (ct *claimTx) pickClient(ctx context.Context, r directory.ClaimRequest, skip map[int64]bool) (int64, int, bool, error) {
	rows, err := ct.tx.QueryContext(ctx, pickSQL, r.CipherSuite, r.Version, r.UserID, len(skip)+1)
	if err != nil {
		return 0, 0, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return 0, 0, false, err
		}
		if !skip[id] {
			return id, n, true, nil
		}
	}
	return 0, 0, false, rows.Err()
}

// errTaken reports a client whose KeyPackages concurrent claims hold.
var errTaken = errors.New("postgres: KeyPackages held by concurrent claims")

// takeSoonest deletes and returns the client's soonest-expiring non-last-resort
// KeyPackage of the version and suite, and whether it had expired already (then it must
// not be served).
func (ct *claimTx) takeSoonest(ctx context.Context, clientID int64, r directory.ClaimRequest, nowS int64) (directory.StoredKeyPackage, bool, error) {
	kp := directory.StoredKeyPackage{ClientID: clientID, Version: r.Version, CipherSuite: r.CipherSuite}
	var notAfter int64
	err := ct.tx.QueryRowContext(ctx, takeSQL, clientID, r.CipherSuite, r.Version).Scan(&kp.Ref, &notAfter, &kp.Data, &kp.LeafKeyHash)
	if errors.Is(err, sql.ErrNoRows) {
		return kp, false, errTaken
	}
	if err != nil {
		return kp, false, fmt.Errorf("claim: %w", err)
	}
	kp.NotAfter = time.Unix(notAfter, 0).UTC()
	return kp, notAfter < nowS, nil
}

// claimLastResort serves the user's least-served unexpired last resort of a client not
// in skip, which stays.
func (ct *claimTx) claimLastResort(ctx context.Context, r directory.ClaimRequest, skip map[int64]bool, lowThreshold int, now time.Time) (directory.Claim, error) {
	tx := ct.tx
	nowMS := now.UnixMilli()
	kp, id, found, err := ct.pickLastResort(ctx, r, skip, now.Unix())
	if err != nil {
		return directory.Claim{}, err
	}
	if !found {
		return directory.Claim{Err: directory.ErrNoKeyPackage}, nil
	}
	notAfter := kp.NotAfter.Unix()
	if _, err := tx.ExecContext(ctx, `UPDATE key_packages SET serves = serves + 1 WHERE id = $1`, id); err != nil {
		return directory.Claim{}, err
	}
	if _, err := tx.ExecContext(ctx, servedSQL, kp.Ref, kp.ClientID, nowMS, notAfter, kp.LeafKeyHash); err != nil {
		return directory.Claim{}, err
	}
	c := directory.Claim{KeyPackage: kp}
	if c.Low, err = markLow(ctx, tx, kp.ClientID, r.CipherSuite, 0, lowThreshold, nowMS); err != nil || r.LastResortOnly {
		return c, err
	}
	// Served for want of one-time KeyPackages: the client is exhausted (told once).
	res, err := tx.ExecContext(ctx, `UPDATE key_package_low SET exhausted_at = $1 WHERE client_id = $2 AND cipher_suite = $3
		AND exhausted_at IS NULL`, nowMS, kp.ClientID, r.CipherSuite)
	if err != nil {
		return c, err
	}
	n, err := res.RowsAffected()
	c.Exhausted = n == 1
	return c, err
}

// pickLastResort finds the least-served unexpired last resort of the user's active
// clients not in skip, and its row ID.
func (ct *claimTx) pickLastResort(ctx context.Context, r directory.ClaimRequest, skip map[int64]bool, nowS int64) (directory.StoredKeyPackage, int64, bool, error) {
	kp := directory.StoredKeyPackage{Version: r.Version, CipherSuite: r.CipherSuite, LastResort: true}
	rows, err := ct.tx.QueryContext(ctx, `SELECT k.id, k.client_id, k.ref, k.not_after, k.data, k.leaf_key_hash FROM key_packages k JOIN clients c ON c.id = k.client_id
		WHERE c.user_id = $1 AND c.revoked_at IS NULL AND k.cipher_suite = $2 AND k.version = $3 AND k.last_resort AND k.not_after >= $4
		ORDER BY k.serves, k.id LIMIT $5`, r.UserID, r.CipherSuite, r.Version, nowS, len(skip)+1)
	if err != nil {
		return kp, 0, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, notAfter int64
		if err := rows.Scan(&id, &kp.ClientID, &kp.Ref, &notAfter, &kp.Data, &kp.LeafKeyHash); err != nil {
			return kp, 0, false, err
		}
		if !skip[kp.ClientID] {
			kp.NotAfter = time.Unix(notAfter, 0).UTC()
			return kp, id, true, nil
		}
	}
	return kp, 0, false, rows.Err()
}

// markLow sets the client's low-stock mark when remaining is under the threshold and
// reports whether it was not set before (a new crossing).
func markLow(ctx context.Context, tx *sql.Tx, clientID int64, suite mls.CipherSuite, remaining, threshold int, nowMS int64) (bool, error) {
	if remaining >= threshold {
		return false, nil
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO key_package_low (client_id, cipher_suite, notified_at) VALUES ($1, $2, $3)
		ON CONFLICT DO NOTHING`, clientID, suite, nowMS)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (db *DB) ClearLowStock(ctx context.Context, clientID int64, suite mls.CipherSuite) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM key_package_low WHERE client_id = $1 AND cipher_suite = $2`, clientID, suite)
		return err
	})
}

func (db *DB) ServedKeyPackage(ctx context.Context, ref []byte) (directory.ServedKeyPackage, error) {
	var s directory.ServedKeyPackage
	row := db.pool.QueryRowContext(ctx, `SELECT `+clientCols+`, s.leaf_key_hash FROM served_key_packages s
		JOIN clients c ON c.id = s.client_id JOIN users u ON u.id = c.user_id WHERE s.ref = $1`, ref)
	c, err := scanClient(scanAlso{row, &s.LeafKeyHash})
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("%w: KeyPackageRef %x", directory.ErrNotFound, ref)
	}
	s.Client = c
	return s, err
}

// scanAlso scans the columns scanClient reads, then one more.
type scanAlso struct {
	s     scanner
	extra any
}

func (a scanAlso) Scan(dst ...any) error { return a.s.Scan(append(dst, a.extra)...) }

func (db *DB) PurgeKeyPackages(ctx context.Context, now time.Time) (directory.PurgeStats, error) {
	var st directory.PurgeStats
	steps := []struct {
		n     *int
		query string
		arg   int64
	}{
		{&st.KeyPackages, `DELETE FROM key_packages WHERE id IN (SELECT k.id FROM key_packages k JOIN clients c ON c.id = k.client_id
			WHERE k.not_after < $1 OR c.revoked_at IS NOT NULL LIMIT $2)`, now.Unix()},
		{&st.Served, `DELETE FROM served_key_packages WHERE ref IN (SELECT ref FROM served_key_packages WHERE not_after < $1 LIMIT $2)`, now.Unix()},
		{&st.Tokens, `DELETE FROM discovery_revoked_tokens WHERE token_id IN (SELECT token_id FROM discovery_revoked_tokens
			WHERE until <= $1 LIMIT $2)`, now.UnixMilli()},
	}
	for _, s := range steps {
		for {
			var n int64
			err := db.Write(ctx, func(tx *sql.Tx) error {
				res, err := tx.ExecContext(ctx, s.query, s.arg, purgeBatch)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return st, err
			}
			*s.n += int(n)
			if n < purgeBatch {
				break
			}
		}
	}
	return st, nil
}
