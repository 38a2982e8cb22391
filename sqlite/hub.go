package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3"
	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

var _ hub.Store = (*DB)(nil)

func isPrimaryKey(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey
}

func nullTime(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return unixTime(v.Int64)
}

func (db *DB) CreateGroup(ctx context.Context, g hub.Group, first hub.Partition, welcomes []hub.PendingWelcome) ([]int64, error) {
	var ids []int64
	err := db.Write(ctx, func(tx *sql.Tx) error {
		ids = ids[:0]
		_, err := tx.ExecContext(ctx, `INSERT INTO hub_groups (group_id, cipher_suite, creator_client, creator_user, created_at)
			VALUES (?, ?, ?, ?, ?)`, g.GroupID, int(g.CipherSuite), g.CreatorClient, g.CreatorUser, g.CreatedAt.UnixMilli())
		if isUnique(err) || isPrimaryKey(err) {
			return fmt.Errorf("%w: %x", hub.ErrGroupExists, g.GroupID)
		}
		if err != nil {
			return err
		}
		first.GroupID = g.GroupID
		if _, err := insertPartition(ctx, tx, &first, sql.NullInt64{}, g.CreatedAt); err != nil {
			return err
		}
		ids, err = insertWelcomes(ctx, tx, welcomes, g.CreatedAt, ids)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

func insertPartition(ctx context.Context, tx *sql.Tx, p *hub.Partition, parent sql.NullInt64, at time.Time) (int64, error) {
	var openedBy sql.NullInt64
	if parent.Valid {
		openedBy = sql.NullInt64{Int64: int64(p.OpenedBy), Valid: true}
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO hub_partitions
		(masked, group_id, parent, opened_by, epoch, verified, group_info, ratchet_tree, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.Masked, p.GroupID, parent, openedBy, int64(p.Epoch), p.Verified, p.GroupInfo, p.RatchetTree, at.UnixMilli())
	if isUnique(err) {
		return 0, fmt.Errorf("%w: %x", hub.ErrPartitionExists, p.Masked)
	}
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

func insertWelcomes(ctx context.Context, tx *sql.Tx, ws []hub.PendingWelcome, at time.Time, ids []int64) ([]int64, error) {
	for _, w := range ws {
		refs, err := (&protocol.WelcomeInitRequest{KeyPackageRefs: w.KeyPackageRefs}).MarshalBinary()
		if err != nil {
			return nil, err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO hub_welcomes (group_id, provider, client_id, refs, welcome, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`, w.GroupID, w.Provider, w.ClientID, refs, w.Welcome, at.UnixMilli())
		if err != nil {
			return nil, err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func (db *DB) Group(ctx context.Context, groupID []byte) (hub.Group, error) {
	g := hub.Group{GroupID: groupID}
	var cs int
	var at int64
	err := db.r.QueryRowContext(ctx, `SELECT cipher_suite, creator_client, creator_user, created_at FROM hub_groups WHERE group_id = ?`,
		groupID).Scan(&cs, &g.CreatorClient, &g.CreatorUser, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return g, fmt.Errorf("%w: %x", hub.ErrUnknownGroup, groupID)
	}
	g.CipherSuite, g.CreatedAt = mls.CipherSuite(cs), unixTime(at)
	return g, err
}

func (db *DB) Groups(ctx context.Context, after []byte, limit int) ([]hub.Group, error) {
	if after == nil {
		after = []byte{}
	}
	rows, err := db.r.QueryContext(ctx, `SELECT group_id, cipher_suite, creator_client, creator_user, created_at
		FROM hub_groups WHERE group_id > ? ORDER BY group_id LIMIT ?`, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []hub.Group
	for rows.Next() {
		var g hub.Group
		var cs int
		var at int64
		if err := rows.Scan(&g.GroupID, &cs, &g.CreatorClient, &g.CreatorUser, &at); err != nil {
			return nil, err
		}
		g.CipherSuite, g.CreatedAt = mls.CipherSuite(cs), unixTime(at)
		out = append(out, g)
	}
	return out, rows.Err()
}

const partitionCols = `p.masked, p.group_id, pp.masked, p.opened_by, p.epoch, p.verified, p.group_info, p.ratchet_tree,
	p.length, p.terminated_at, p.created_at FROM hub_partitions p LEFT JOIN hub_partitions pp ON pp.id = p.parent`

func scanPartition(s scanner) (hub.Partition, error) {
	var p hub.Partition
	var openedBy, terminated sql.NullInt64
	var epoch, length, at int64
	if err := s.Scan(&p.Masked, &p.GroupID, &p.Parent, &openedBy, &epoch, &p.Verified, &p.GroupInfo, &p.RatchetTree,
		&length, &terminated, &at); err != nil {
		return p, err
	}
	p.OpenedBy, p.Epoch, p.Length = uint32(openedBy.Int64), uint64(epoch), uint32(length)
	p.Terminated, p.TerminatedAt, p.CreatedAt = terminated.Valid, nullTime(terminated), unixTime(at)
	return p, nil
}

func (db *DB) Partition(ctx context.Context, masked []byte) (hub.Partition, error) {
	p, err := scanPartition(db.r.QueryRowContext(ctx, `SELECT `+partitionCols+` WHERE p.masked = ?`, masked))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("%w: %x", hub.ErrUnknownPartition, masked)
	}
	return p, err
}

func (db *DB) Partitions(ctx context.Context, groupID []byte) ([]hub.Partition, error) {
	return db.queryPartitions(ctx, `SELECT `+partitionCols+` WHERE p.group_id = ? ORDER BY p.id`, groupID)
}

func (db *DB) queryPartitions(ctx context.Context, q string, args ...any) ([]hub.Partition, error) {
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []hub.Partition
	for rows.Next() {
		p, err := scanPartition(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// mainLine walks a group's partitions from its first one, taking at each fork the
// live partition the first sequenced commit opened (the smallest opened_by), and
// ends at the tip. The walk is one index lookup (hub_partitions_parent) per epoch.
const mainLine = `WITH RECURSIVE line(id, depth) AS (
		SELECT min(id), 0 FROM hub_partitions WHERE group_id = ? AND parent IS NULL AND terminated_at IS NULL
		UNION ALL
		SELECT (SELECT c.id FROM hub_partitions c WHERE c.parent = line.id AND c.terminated_at IS NULL
			ORDER BY c.opened_by, c.id LIMIT 1), line.depth + 1
		FROM line WHERE line.id IS NOT NULL)
	SELECT id FROM line WHERE id IS NOT NULL ORDER BY depth DESC LIMIT 1`

// NewestPartition is the tip of the group's main line (mainLine); when its first
// partition is terminated, the most recently opened live partition.
func (db *DB) NewestPartition(ctx context.Context, groupID []byte) (hub.Partition, error) {
	q := `SELECT ` + partitionCols + ` WHERE p.id = (` + mainLine + `)`
	ps, err := db.queryPartitions(ctx, q, groupID)
	if err == nil && len(ps) == 0 {
		ps, err = db.queryPartitions(ctx, `SELECT `+partitionCols+` WHERE p.group_id = ? AND p.terminated_at IS NULL
		ORDER BY p.id DESC LIMIT 1`, groupID)
	}
	if err != nil {
		return hub.Partition{}, err
	}
	if len(ps) == 0 {
		return hub.Partition{}, fmt.Errorf("%w: group %x has no open partition", hub.ErrUnknownPartition, groupID)
	}
	return ps[0], nil
}

func (db *DB) FindRequest(ctx context.Context, requestHash []byte) ([]byte, uint32, bool, error) {
	var masked []byte
	var counter int64
	err := db.r.QueryRowContext(ctx, `SELECT p.masked, l.counter FROM hub_log l JOIN hub_partitions p ON p.id = l.partition
		WHERE l.request_hash = ?`, requestHash).Scan(&masked, &counter)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, err
	}
	return masked, uint32(counter), true, nil
}

// errDuplicateRequest aborts an Append whose request hash is already in the
// log; Append then answers from the log.
var errDuplicateRequest = errors.New("sqlite: duplicate request")

// hubStatements are the hub's hot statements, prepared once per store on
// the writer connection (a transaction on that connection reuses them).
type hubStatements struct {
	bump, insertLog *sql.Stmt
}

var hubStmts sync.Map // *sql.DB (the writer) -> *hubStatements

func (db *DB) hubStatements(ctx context.Context) (*hubStatements, error) {
	if v, ok := hubStmts.Load(db.w); ok {
		return v.(*hubStatements), nil
	}
	var st hubStatements
	var err error
	if st.bump, err = db.w.PrepareContext(ctx, `UPDATE hub_partitions SET length = length + 1 WHERE masked = ?
		RETURNING id, length - 1, terminated_at, group_id`); err != nil {
		return nil, err
	}
	if st.insertLog, err = db.w.PrepareContext(ctx, `INSERT INTO hub_log
		(partition, counter, content_type, public, message, next, sender_client, request_hash, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`); err != nil {
		return nil, err
	}
	v, _ := hubStmts.LoadOrStore(db.w, &st)
	return v.(*hubStatements), nil
}

func (db *DB) Append(ctx context.Context, a hub.AppendRequest, published func(hub.Entry)) (hub.AppendResult, error) {
	st, err := db.hubStatements(ctx)
	if err != nil {
		return hub.AppendResult{}, err
	}
	var res hub.AppendResult
	fn := func(tx *sql.Tx) error {
		res = hub.AppendResult{Masked: a.Masked}
		var id, counter int64
		var terminated sql.NullInt64
		var groupID []byte
		err := tx.StmtContext(ctx, st.bump).QueryRowContext(ctx, a.Masked).Scan(&id, &counter, &terminated, &groupID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("%w: %x", hub.ErrUnknownPartition, a.Masked)
		case err != nil:
			return err
		case terminated.Valid:
			return fmt.Errorf("%w: %x", hub.ErrTerminated, a.Masked)
		case counter > math.MaxUint32:
			return fmt.Errorf("%w: %x", hub.ErrPartitionFull, a.Masked)
		}
		res.Counter = uint32(counter)
		if err := checkHandshakesSeen(ctx, tx, a, id); err != nil {
			return err
		}
		next, err := appendNext(ctx, tx, a, id, groupID, &res)
		if err != nil {
			return err
		}
		_, err = tx.StmtContext(ctx, st.insertLog).ExecContext(ctx, id, counter, int(a.ContentType), a.Public, a.Message, next,
			a.SenderClient, a.RequestHash, a.At.UnixMilli())
		if isUnique(err) {
			return errDuplicateRequest
		}
		if err != nil {
			return err
		}
		res.WelcomeIDs, err = insertWelcomes(ctx, tx, a.Welcomes, a.At, nil)
		return err
	}
	var after func()
	if published != nil {
		after = func() {
			e := hub.Entry{Masked: a.Masked, Counter: res.Counter, ContentType: a.ContentType, Public: a.Public,
				Message: a.Message}
			if a.Next != nil {
				e.NextMasked, e.GroupInfo = a.Next.Masked, a.Next.GroupInfo
			}
			published(e)
		}
	}
	err = db.WriteThen(ctx, fn, after)
	if errors.Is(err, errDuplicateRequest) || errors.Is(err, hub.ErrTerminated) || errors.Is(err, hub.ErrPartitionExists) ||
		errors.Is(err, hub.ErrStale) {
		// A retry of a sequenced request (whose commit opened its partition
		// already, or whose partition was terminated or has handshakes since) is
		// answered from the log.
		masked, c, ok, ferr := db.FindRequest(ctx, a.RequestHash)
		if ferr != nil {
			return hub.AppendResult{}, errors.Join(err, ferr)
		}
		if ok {
			return hub.AppendResult{Masked: masked, Counter: c, Duplicate: true}, nil
		}
	}
	if err != nil {
		return hub.AppendResult{}, err
	}
	return res, nil
}

// appendNext opens the partition a commit names and reports a fork.
func appendNext(ctx context.Context, tx *sql.Tx, a hub.AppendRequest, parent int64, groupID []byte, res *hub.AppendResult) (sql.NullInt64, error) {
	if a.Next == nil {
		return sql.NullInt64{}, nil
	}
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM hub_partitions WHERE parent = ?)`, parent).Scan(&res.Fork); err != nil {
		return sql.NullInt64{}, err
	}
	p := *a.Next
	p.OpenedBy, p.GroupID = res.Counter, groupID
	id, err := insertPartition(ctx, tx, &p, sql.NullInt64{Int64: parent, Valid: true}, a.At)
	return sql.NullInt64{Int64: id, Valid: true}, err
}

const entryCols = `l.counter, l.content_type, l.public, l.message, n.masked, n.group_info
	FROM hub_log l LEFT JOIN hub_partitions n ON n.id = l.next`

func (db *DB) Entries(ctx context.Context, masked []byte, after int64, limit, maxBytes int) ([]hub.Entry, error) {
	return db.queryEntries(ctx, masked, maxBytes, `SELECT `+entryCols+`
		WHERE l.partition = (SELECT id FROM hub_partitions WHERE masked = ?) AND l.counter > ?
		ORDER BY l.counter LIMIT ?`, masked, after, limit)
}

func (db *DB) Handshakes(ctx context.Context, masked []byte, before int64) ([]hub.Entry, error) {
	return db.queryEntries(ctx, masked, math.MaxInt, `SELECT `+entryCols+`
		WHERE l.partition = (SELECT id FROM hub_partitions WHERE masked = ?) AND l.counter < ? AND l.content_type != ?
		ORDER BY l.counter`, masked, before, int(mls.ContentTypeApplication))
}

func (db *DB) HandshakesFrom(ctx context.Context, masked []byte, from int64) ([]hub.Entry, error) {
	return db.queryEntries(ctx, masked, math.MaxInt, `SELECT `+entryCols+`
		WHERE l.partition = (SELECT id FROM hub_partitions WHERE masked = ?) AND l.counter >= ? AND l.content_type != ?
		ORDER BY l.counter`, masked, from, int(mls.ContentTypeApplication))
}

// checkHandshakesSeen fails a Checked append with hub.ErrStale if a handshake
// the hub did not check against was sequenced to the partition (id) since. It
// runs after the partition's row is locked, so no other node appends between
// the check and the insert.
func checkHandshakesSeen(ctx context.Context, tx *sql.Tx, a hub.AppendRequest, id int64) error {
	if !a.Checked {
		return nil
	}
	var newer bool
	err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM hub_log
		WHERE partition = ? AND counter >= ? AND content_type != ?)`, id, int64(a.HandshakesSeen), int(mls.ContentTypeApplication)).Scan(&newer)
	if err != nil {
		return err
	}
	if newer {
		return fmt.Errorf("%w: %x has handshakes from %d on", hub.ErrStale, a.Masked, a.HandshakesSeen)
	}
	return nil
}

func (db *DB) queryEntries(ctx context.Context, masked []byte, maxBytes int, q string, args ...any) ([]hub.Entry, error) {
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []hub.Entry
	size := 0
	for size < maxBytes && rows.Next() {
		e := hub.Entry{Masked: masked}
		var counter int64
		var ct int
		if err := rows.Scan(&counter, &ct, &e.Public, &e.Message, &e.NextMasked, &e.GroupInfo); err != nil {
			return nil, err
		}
		e.Counter, e.ContentType = uint32(counter), mls.ContentType(ct)
		size += len(e.Message) + len(e.GroupInfo)
		out = append(out, e)
	}
	return out, rows.Err()
}

func (db *DB) Terminate(ctx context.Context, masked []byte, at time.Time, published func(hub.Entry)) (bool, error) {
	var changed bool
	var length int64
	fn := func(tx *sql.Tx) error {
		var terminated sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT length, terminated_at FROM hub_partitions WHERE masked = ?`, masked).Scan(&length, &terminated)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %x", hub.ErrUnknownPartition, masked)
		}
		if err != nil || terminated.Valid {
			return err
		}
		changed = true
		_, err = tx.ExecContext(ctx, `UPDATE hub_partitions SET terminated_at = ? WHERE masked = ?`, at.UnixMilli(), masked)
		return err
	}
	var after func()
	if published != nil {
		after = func() {
			if changed {
				published(hub.Entry{Masked: masked, Counter: uint32(length), Terminated: true})
			}
		}
	}
	err := db.WriteThen(ctx, fn, after)
	return changed, err
}

func (db *DB) PendingWelcomes(ctx context.Context, provider string, limit int) ([]hub.PendingWelcome, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, group_id, client_id, refs, welcome, created_at FROM hub_welcomes
		WHERE provider = ? ORDER BY id LIMIT ?`, provider, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []hub.PendingWelcome
	for rows.Next() {
		w := hub.PendingWelcome{Provider: provider}
		var refs []byte
		var at int64
		if err := rows.Scan(&w.ID, &w.GroupID, &w.ClientID, &refs, &w.Welcome, &at); err != nil {
			return nil, err
		}
		var q protocol.WelcomeInitRequest
		if err := q.UnmarshalBinary(refs); err != nil {
			return nil, fmt.Errorf("sqlite: Welcome %d refs: %w", w.ID, err)
		}
		w.KeyPackageRefs, w.CreatedAt = q.KeyPackageRefs, unixTime(at)
		out = append(out, w)
	}
	return out, rows.Err()
}

func (db *DB) Welcome(ctx context.Context, id int64) (hub.PendingWelcome, error) {
	w := hub.PendingWelcome{ID: id}
	var refs []byte
	var at int64
	err := db.r.QueryRowContext(ctx, `SELECT group_id, provider, client_id, refs, welcome, created_at FROM hub_welcomes
		WHERE id = ?`, id).Scan(&w.GroupID, &w.Provider, &w.ClientID, &refs, &w.Welcome, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return w, fmt.Errorf("%w: Welcome %d", hub.ErrNotFound, id)
	}
	if err != nil {
		return w, err
	}
	var q protocol.WelcomeInitRequest
	if err := q.UnmarshalBinary(refs); err != nil {
		return w, fmt.Errorf("sqlite: Welcome %d refs: %w", id, err)
	}
	w.KeyPackageRefs, w.CreatedAt = q.KeyPackageRefs, unixTime(at)
	return w, nil
}

func (db *DB) DeleteWelcome(ctx context.Context, id int64) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM hub_welcomes WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: Welcome %d", hub.ErrNotFound, id)
		}
		return nil
	})
}
