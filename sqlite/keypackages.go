package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

var _ directory.KeyPackageStore = (*DB)(nil)

// claimStatements are the claim's hot statements, prepared once per store on the
// writer connection (a transaction on that connection reuses them).
type claimStatements struct {
	useToken, pick, take, served *sql.Stmt
}

var claimStmts sync.Map // *sql.DB (the writer) -> *claimStatements

func (db *DB) claimStatements(ctx context.Context) (*claimStatements, error) {
	if v, ok := claimStmts.Load(db.w); ok {
		return v.(*claimStatements), nil
	}
	var st claimStatements
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&st.useToken, `UPDATE discovery_tokens SET uses = uses + 1, last_used_at = ? WHERE id = ? AND revoked_at IS NULL`},
		{&st.pick, `SELECT s.client_id, s.available FROM clients c
			JOIN key_package_counts s ON s.client_id = c.id AND s.cipher_suite = ? AND s.version = ?
			WHERE c.user_id = ? AND c.revoked_at IS NULL AND s.available > 0
			ORDER BY s.available DESC, c.id LIMIT 1`},
		{&st.take, `DELETE FROM key_packages WHERE id = (SELECT id FROM key_packages
			WHERE client_id = ? AND cipher_suite = ? AND version = ? AND last_resort = 0 ORDER BY not_after, id LIMIT 1)
			RETURNING ref, not_after, data, leaf_key_hash`},
		{&st.served, `INSERT INTO served_key_packages (ref, client_id, served_at, not_after, leaf_key_hash) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (ref) DO UPDATE SET served_at = excluded.served_at, serves = serves + 1`},
	} {
		var err error
		if *p.dst, err = db.w.PrepareContext(ctx, p.query); err != nil {
			return nil, fmt.Errorf("sqlite: prepare claim statements: %w", err)
		}
	}
	v, _ := claimStmts.LoadOrStore(db.w, &st)
	return v.(*claimStatements), nil
}

// claimTx is one claim transaction with its statements bound to it.
type claimTx struct {
	tx                           *sql.Tx
	useToken, pick, take, served *sql.Stmt
}

// purgeBatch bounds the rows one purge transaction deletes, so that a large purge does
// not hold the writer for long.
const purgeBatch = 5000

func (db *DB) AddKeyPackages(ctx context.Context, clientID int64, kps []directory.StoredKeyPackage, maxPerClient, lowThreshold int, now time.Time) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		var revoked sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT revoked_at FROM clients WHERE id = ?`, clientID).Scan(&revoked)
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
		if _, err := tx.ExecContext(ctx, `DELETE FROM key_packages WHERE client_id = ? AND not_after < ?`, clientID, nowS); err != nil {
			return err
		}
		for i := range kps {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM key_packages WHERE ref = ?1)
				+ (SELECT count(*) FROM served_key_packages WHERE ref = ?1)`, kps[i].Ref).Scan(&n); err != nil {
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
				if _, err := tx.ExecContext(ctx, `DELETE FROM key_packages WHERE client_id = ? AND cipher_suite = ? AND last_resort = 1`,
					clientID, kp.CipherSuite); err != nil {
					return err
				}
			} else {
				suites[kp.CipherSuite] = kp.Version
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO key_packages (ref, client_id, version, cipher_suite, last_resort, not_after, uploaded_at, data, leaf_key_hash)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, kp.Ref, clientID, kp.Version, kp.CipherSuite, kp.LastResort,
				kp.NotAfter.Unix(), now.UnixMilli(), kp.Data, kp.LeafKeyHash)
			if isUnique(err) {
				return &directory.UploadError{Index: i, Err: directory.ErrDuplicateKeyPackage}
			}
			if err != nil {
				return err
			}
		}
		var total int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM key_packages WHERE client_id = ?`, clientID).Scan(&total); err != nil {
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
				if _, err := tx.ExecContext(ctx, `DELETE FROM key_package_low WHERE client_id = ? AND cipher_suite = ?`, clientID, suite); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func countAvailable(ctx context.Context, tx *sql.Tx, clientID int64, v mls.ProtocolVersion, suite mls.CipherSuite, nowS int64) (int, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM key_packages WHERE client_id = ? AND cipher_suite = ? AND version = ?
		AND last_resort = 0 AND not_after >= ?`, clientID, suite, v, nowS).Scan(&n)
	return n, err
}

func (db *DB) KeyPackageStock(ctx context.Context, clientID int64, now time.Time) ([]protocol.KeyPackageStock, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT cipher_suite, COALESCE(SUM(last_resort = 0), 0), MAX(last_resort)
		FROM key_packages WHERE client_id = ? AND not_after >= ? GROUP BY cipher_suite ORDER BY cipher_suite`, clientID, now.Unix())
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
	st, err := db.claimStatements(ctx)
	if err != nil {
		return nil, err
	}
	var claims []directory.Claim
	err = db.Write(ctx, func(tx *sql.Tx) error {
		ct := &claimTx{tx: tx, useToken: tx.StmtContext(ctx, st.useToken), pick: tx.StmtContext(ctx, st.pick),
			take: tx.StmtContext(ctx, st.take), served: tx.StmtContext(ctx, st.served)}
		claims = make([]directory.Claim, len(reqs))
		for i, r := range reqs {
			c, err := ct.claimOne(ctx, r, lowThreshold, now)
			if err != nil {
				return err
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

// claimOne answers one request inside the claim transaction. A request that cannot be
// served is a Claim with Err set; only a database failure is an error.
func (ct *claimTx) claimOne(ctx context.Context, r directory.ClaimRequest, lowThreshold int, now time.Time) (directory.Claim, error) {
	tx := ct.tx
	nowS, nowMS := now.Unix(), now.UnixMilli()
	if r.TokenID != 0 {
		res, err := ct.useToken.ExecContext(ctx, nowMS, r.TokenID)
		if err != nil {
			return directory.Claim{}, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return directory.Claim{Err: directory.ErrTokenRevoked}, nil
		}
	}
	var kp directory.StoredKeyPackage
	var stock int
	for attempt := 0; ; attempt++ {
		if attempt == 64 {
			return directory.Claim{}, errors.New("claim: expired KeyPackages kept turning up")
		}
		var clientID int64
		err := ct.pick.QueryRowContext(ctx, r.CipherSuite, r.Version, r.UserID).Scan(&clientID, &stock)
		if errors.Is(err, sql.ErrNoRows) {
			return ct.claimLastResort(ctx, r, lowThreshold, now)
		}
		if err != nil {
			return directory.Claim{}, err
		}
		var expired bool
		kp, expired, err = ct.takeSoonest(ctx, clientID, r, nowS)
		if err != nil {
			return directory.Claim{}, err
		}
		if !expired {
			break
		}
		// The counts include expired KeyPackages until they are deleted: drop this
		// client's and pick again.
		if _, err := tx.ExecContext(ctx, `DELETE FROM key_packages WHERE client_id = ? AND cipher_suite = ? AND version = ?
			AND last_resort = 0 AND not_after < ?`, clientID, r.CipherSuite, r.Version, nowS); err != nil {
			return directory.Claim{}, err
		}
	}
	if _, err := ct.served.ExecContext(ctx, kp.Ref, kp.ClientID, nowMS, kp.NotAfter.Unix(), kp.LeafKeyHash); err != nil {
		return directory.Claim{}, err
	}
	c := directory.Claim{KeyPackage: kp, Remaining: stock - 1}
	var err error
	c.Low, err = markLow(ctx, tx, kp.ClientID, r.CipherSuite, c.Remaining, lowThreshold, nowMS)
	return c, err
}

// takeSoonest deletes and returns the client's soonest-expiring non-last-resort
// KeyPackage of the version and suite, and whether it had expired already (then it must
// not be served).
func (ct *claimTx) takeSoonest(ctx context.Context, clientID int64, r directory.ClaimRequest, nowS int64) (directory.StoredKeyPackage, bool, error) {
	kp := directory.StoredKeyPackage{ClientID: clientID, Version: r.Version, CipherSuite: r.CipherSuite}
	var notAfter int64
	err := ct.take.QueryRowContext(ctx, clientID, r.CipherSuite, r.Version).Scan(&kp.Ref, &notAfter, &kp.Data, &kp.LeafKeyHash)
	if err != nil {
		return kp, false, fmt.Errorf("claim: %w", err)
	}
	kp.NotAfter = time.Unix(notAfter, 0).UTC()
	return kp, notAfter < nowS, nil
}

// claimLastResort serves the user's least-served unexpired last resort, which stays.
func (ct *claimTx) claimLastResort(ctx context.Context, r directory.ClaimRequest, lowThreshold int, now time.Time) (directory.Claim, error) {
	tx := ct.tx
	nowS, nowMS := now.Unix(), now.UnixMilli()
	kp := directory.StoredKeyPackage{Version: r.Version, CipherSuite: r.CipherSuite, LastResort: true}
	var id, notAfter int64
	err := tx.QueryRowContext(ctx, `SELECT k.id, k.client_id, k.ref, k.not_after, k.data, k.leaf_key_hash FROM key_packages k JOIN clients c ON c.id = k.client_id
		WHERE c.user_id = ? AND c.revoked_at IS NULL AND k.cipher_suite = ? AND k.version = ? AND k.last_resort = 1 AND k.not_after >= ?
		ORDER BY k.serves, k.id LIMIT 1`, r.UserID, r.CipherSuite, r.Version, nowS).Scan(&id, &kp.ClientID, &kp.Ref, &notAfter, &kp.Data, &kp.LeafKeyHash)
	if errors.Is(err, sql.ErrNoRows) {
		return directory.Claim{Err: directory.ErrNoKeyPackage}, nil
	}
	if err != nil {
		return directory.Claim{}, err
	}
	kp.NotAfter = time.Unix(notAfter, 0).UTC()
	if _, err := tx.ExecContext(ctx, `UPDATE key_packages SET serves = serves + 1 WHERE id = ?`, id); err != nil {
		return directory.Claim{}, err
	}
	if _, err := ct.served.ExecContext(ctx, kp.Ref, kp.ClientID, nowMS, notAfter, kp.LeafKeyHash); err != nil {
		return directory.Claim{}, err
	}
	c := directory.Claim{KeyPackage: kp}
	c.Low, err = markLow(ctx, tx, kp.ClientID, r.CipherSuite, 0, lowThreshold, nowMS)
	return c, err
}

// markLow sets the client's low-stock mark when remaining is under the threshold and
// reports whether it was not set before (a new crossing).
func markLow(ctx context.Context, tx *sql.Tx, clientID int64, suite mls.CipherSuite, remaining, threshold int, nowMS int64) (bool, error) {
	if remaining >= threshold {
		return false, nil
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO key_package_low (client_id, cipher_suite, notified_at) VALUES (?, ?, ?)
		ON CONFLICT DO NOTHING`, clientID, suite, nowMS)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (db *DB) ClearLowStock(ctx context.Context, clientID int64, suite mls.CipherSuite) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM key_package_low WHERE client_id = ? AND cipher_suite = ?`, clientID, suite)
		return err
	})
}

func (db *DB) ServedKeyPackage(ctx context.Context, ref []byte) (directory.ServedKeyPackage, error) {
	var s directory.ServedKeyPackage
	row := db.r.QueryRowContext(ctx, `SELECT `+clientCols+`, s.leaf_key_hash FROM served_key_packages s
		JOIN clients c ON c.id = s.client_id JOIN users u ON u.id = c.user_id WHERE s.ref = ?`, ref)
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
			WHERE k.not_after < ?1 OR c.revoked_at IS NOT NULL LIMIT ?2)`, now.Unix()},
		{&st.Served, `DELETE FROM served_key_packages WHERE ref IN (SELECT ref FROM served_key_packages WHERE not_after < ?1 LIMIT ?2)`, now.Unix()},
		{&st.Tokens, `DELETE FROM discovery_tokens WHERE id IN (SELECT id FROM discovery_tokens WHERE expires_at <= ?1 LIMIT ?2)`, now.UnixMilli()},
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

const tokenCols = `t.id, t.policy, COALESCE(t.user_id, 0), COALESCE(u.name, ''), t.requester, t.created_at,
	COALESCE(t.expires_at, 0), COALESCE(t.revoked_at, 0), COALESCE(t.last_used_at, 0), t.uses`

const tokenFrom = ` FROM discovery_tokens t LEFT JOIN users u ON u.id = t.user_id `

func scanToken(s scanner, extra ...any) (directory.DiscoveryToken, error) {
	var t directory.DiscoveryToken
	var policy string
	var created, expires, revoked, used int64
	dest := append([]any{&t.ID, &policy, &t.UserID, &t.UserName, &t.Requester, &created, &expires, &revoked, &used, &t.Uses}, extra...)
	if err := s.Scan(dest...); err != nil {
		return t, err
	}
	t.Policy = directory.TokenPolicy(policy)
	t.CreatedAt = unixTime(created)
	for _, f := range []struct {
		dst *time.Time
		v   int64
	}{{&t.ExpiresAt, expires}, {&t.RevokedAt, revoked}, {&t.LastUsed, used}} {
		if f.v != 0 {
			*f.dst = unixTime(f.v)
		}
	}
	return t, nil
}

func nullMillis(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

func (db *DB) CreateDiscoveryToken(ctx context.Context, t directory.DiscoveryToken, hash []byte) (directory.DiscoveryToken, error) {
	var uid any
	if t.UserID != 0 {
		uid = t.UserID
	}
	t.CreatedAt = t.CreatedAt.UTC().Truncate(time.Millisecond)
	t.ExpiresAt = t.ExpiresAt.UTC().Truncate(time.Millisecond)
	err := db.Write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO discovery_tokens (token_hash, policy, user_id, requester, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING id`, hash, string(t.Policy), uid, t.Requester, t.CreatedAt.UnixMilli(),
			nullMillis(t.ExpiresAt)).Scan(&t.ID)
	})
	return t, err
}

const liveShared = `SELECT ` + tokenCols + `, t.token` + tokenFrom + `WHERE t.policy = 'shared' AND t.revoked_at IS NULL
	AND (t.expires_at IS NULL OR t.expires_at > ?) ORDER BY t.id DESC LIMIT 1`

func (db *DB) SharedDiscoveryToken(ctx context.Context, token string, expires, now time.Time) (string, directory.DiscoveryToken, error) {
	var plain string
	t, err := scanToken(db.r.QueryRowContext(ctx, liveShared, now.UnixMilli()), &plain)
	if err == nil {
		return plain, t, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", t, err
	}
	err = db.Write(ctx, func(tx *sql.Tx) error {
		t, err = scanToken(tx.QueryRowContext(ctx, liveShared, now.UnixMilli()), &plain)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		plain = token
		t = directory.DiscoveryToken{Policy: directory.TokenShared, CreatedAt: now.UTC().Truncate(time.Millisecond),
			ExpiresAt: expires.UTC().Truncate(time.Millisecond)}
		if expires.IsZero() {
			t.ExpiresAt = time.Time{}
		}
		return tx.QueryRowContext(ctx, `INSERT INTO discovery_tokens (token_hash, token, policy, created_at, expires_at)
			VALUES (?, ?, 'shared', ?, ?) RETURNING id`, directory.HashToken(token), token, now.UnixMilli(),
			nullMillis(t.ExpiresAt)).Scan(&t.ID)
	})
	if err != nil {
		return "", directory.DiscoveryToken{}, err
	}
	return plain, t, nil
}

func (db *DB) DiscoveryTokenByHash(ctx context.Context, hash []byte) (directory.DiscoveryToken, error) {
	t, err := scanToken(db.r.QueryRowContext(ctx, `SELECT `+tokenCols+tokenFrom+`WHERE t.token_hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return t, directory.ErrNotFound
	}
	return t, err
}

func (db *DB) ListDiscoveryTokens(ctx context.Context, after int64, limit int) ([]directory.DiscoveryToken, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+tokenCols+tokenFrom+`WHERE t.id > ? ORDER BY t.id LIMIT ?`, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []directory.DiscoveryToken
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

func (db *DB) RevokeDiscoveryToken(ctx context.Context, id int64, at time.Time) (directory.DiscoveryToken, error) {
	var t directory.DiscoveryToken
	err := db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE discovery_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, at.UnixMilli(), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: discovery token %d", directory.ErrNotFound, id)
		}
		t, err = scanToken(tx.QueryRowContext(ctx, `SELECT `+tokenCols+tokenFrom+`WHERE t.id = ?`, id))
		return err
	})
	return t, err
}
