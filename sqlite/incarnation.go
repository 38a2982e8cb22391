package sqlite

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// Incarnation is the identity of the store's history: it changes whenever
// committed writes may have been lost, so that clients holding marks (the last
// mailbox seq they handled) know to start them over.
type Incarnation struct {
	ID []byte // 16 random bytes
	// Minted is why this Open gave the store a new incarnation, or "" when it kept
	// the one it had (or created the store).
	Minted string
	// Commits is the store's commit count when it was opened.
	Commits uint64
}

// openState is what Open learnt before reconciling the store with its mark.
type openState struct {
	created   bool   // the store had no schema: this Open created it
	metaAdded bool   // migration 0009 ran in this Open: no mark could exist yet
	restored  string // non-empty: the store was just restored from this file
	reconcile bool   // no server holds the store: this Open may check and mint
}

// reconcile compares the store with its mark file and mints a new incarnation when
// the store lost committed writes (or cannot be shown not to have). It runs in one
// write transaction, so two processes opening at once do not both decide.
func (db *DB) reconcile(ctx context.Context, st openState) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: incarnation: %w", err)
	}
	defer tx.Rollback()
	var inc Incarnation
	if err := tx.QueryRowContext(ctx, `SELECT incarnation, commits FROM store_meta WHERE id = 1`).Scan(&inc.ID, &inc.Commits); err != nil {
		return fmt.Errorf("sqlite: incarnation: %w", err)
	}
	if !st.reconcile {
		db.inc = inc
		return nil
	}
	mark, merr := readMarkSettled(db.markPath)
	reason := mintReason(inc, mark, merr, st)
	switch {
	case reason != "":
		if inc, err = mint(ctx, tx, inc, mark, reason); err != nil {
			return err
		}
		if err := writeMarkFile(db.markPath, Mark{Incarnation: inc.ID, Commits: inc.Commits}); err != nil {
			return err
		}
	case db.owner || merr != nil:
		// The server starts from a fresh, durable mark; a store created or upgraded
		// by another process gets its first one.
		if err := writeMarkFile(db.markPath, Mark{Incarnation: inc.ID, Commits: inc.Commits}); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: incarnation: %w", err)
	}
	db.inc = inc
	return nil
}

// mintReason says why the store needs a new incarnation, or "" when it does not.
func mintReason(inc Incarnation, mark Mark, merr error, st openState) string {
	switch {
	case st.restored != "":
		return "restored from " + st.restored
	case errors.Is(merr, fs.ErrNotExist):
		if st.created || st.metaAdded {
			return ""
		}
		return "the mark file is missing (deleted, or the store was copied or restored by hand): committed writes may be lost"
	case merr != nil:
		return fmt.Sprintf("the mark file is unreadable (%v): committed writes may be lost", merr)
	case !bytes.Equal(mark.Incarnation, inc.ID):
		return fmt.Sprintf("the store's incarnation %x is not the mark's %x: an older copy of the store, or another store's file", inc.ID, mark.Incarnation)
	case inc.Commits < mark.Commits:
		return fmt.Sprintf("the store is %d commits behind its mark (%d < %d): committed writes were lost (a damaged or deleted WAL, or an older copy of the store)",
			mark.Commits-inc.Commits, inc.Commits, mark.Commits)
	}
	return ""
}

// mint gives the store a new incarnation whose commit count is past both the store's
// and the mark's, so that the new mark never looks ahead of the store.
func mint(ctx context.Context, tx *sql.Tx, old Incarnation, mark Mark, reason string) (Incarnation, error) {
	inc := Incarnation{ID: make([]byte, 16), Minted: reason, Commits: max(old.Commits, mark.Commits) + 1}
	rand.Read(inc.ID)
	if _, err := tx.ExecContext(ctx, `UPDATE store_meta SET incarnation = ?, commits = ?, minted_at = ?, mint_reason = ? WHERE id = 1`,
		inc.ID, inc.Commits, time.Now().UnixMilli(), reason); err != nil {
		return old, fmt.Errorf("sqlite: mint incarnation: %w", err)
	}
	return inc, nil
}

// Incarnation returns the store's incarnation as this Open found or made it.
func (db *DB) Incarnation() Incarnation { return db.inc }

// Commits returns the highest commit count this process committed or found.
func (db *DB) Commits() uint64 { return max(db.commits.Load(), db.inc.Commits) }

// MetaInfo is the store's incarnation record as committed.
type MetaInfo struct {
	Incarnation []byte
	Commits     uint64
	MintedAt    time.Time
	MintReason  string
}

// Meta reads the store's incarnation record.
func (db *DB) Meta(ctx context.Context) (MetaInfo, error) {
	var m MetaInfo
	var at int64
	err := db.r.QueryRowContext(ctx, `SELECT incarnation, commits, minted_at, mint_reason FROM store_meta WHERE id = 1`).
		Scan(&m.Incarnation, &m.Commits, &at, &m.MintReason)
	if err != nil {
		return m, fmt.Errorf("sqlite: meta: %w", err)
	}
	m.MintedAt = time.UnixMilli(at)
	return m, nil
}
