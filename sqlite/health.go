package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"time"
)

const (
	// healthEvery is how long a Health answer is reused: however often /readyz is
	// asked, the store sees at most one probe write per interval.
	healthEvery = time.Second
	// probeTimeout bounds a probe's read and its wait to enter the write queue.
	probeTimeout = 5 * time.Second
)

// Health is the state of the store's parts, each nil while it works.
type Health struct {
	Read  error // a read query failed
	Write error // a commit failed: the store takes no writes (read-only, full, I/O errors)
	Disk  error // the file system holding the store has less free space than Options.MinFreeBytes
	At    time.Time
}

// health caches the latest probe. Guarded by mu.
type health struct {
	mu      sync.Mutex
	last    Health
	running chan struct{} // closed when the probe in flight ends; nil when none
	started time.Time
}

// Health probes the store: a read, a commit of one row in store_probe, and the free
// space on its file system. An answer is reused for a second, concurrent callers
// share one probe, and a caller whose ctx ends before the probe does gets the write
// reported as not answering.
func (db *DB) Health(ctx context.Context) Health {
	h := &db.health
	h.mu.Lock()
	if !h.last.At.IsZero() && time.Since(h.last.At) < healthEvery {
		last := h.last
		h.mu.Unlock()
		return last
	}
	if h.running == nil {
		h.running, h.started = make(chan struct{}), time.Now()
		go db.probe(h.running)
	}
	running, started := h.running, h.started
	h.mu.Unlock()
	select {
	case <-running:
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.last
	case <-ctx.Done():
		return Health{At: time.Now(), Write: fmt.Errorf("sqlite: probe: no commit after %s", time.Since(started).Round(time.Millisecond))}
	}
}

func (db *DB) probe(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	var h Health
	var n int64
	if err := db.r.QueryRowContext(ctx, `SELECT commits FROM store_meta WHERE id = 1`).Scan(&n); err != nil {
		h.Read = fmt.Errorf("sqlite: probe read: %w", err)
	}
	if err := db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO store_probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at`,
			time.Now().UnixMilli())
		return err
	}); err != nil {
		h.Write = fmt.Errorf("sqlite: probe write: %w", err)
	}
	h.Disk = db.checkDisk()
	h.At = time.Now()
	db.health.mu.Lock()
	db.health.last, db.health.running = h, nil
	db.health.mu.Unlock()
	close(done)
}

// checkDisk reports a file system with less free space than Options.MinFreeBytes.
func (db *DB) checkDisk() error {
	if db.minFree <= 0 {
		return nil
	}
	free, known, err := freeBytes(filepath.Dir(db.path))
	switch {
	case err != nil:
		return fmt.Errorf("sqlite: free space: %w", err)
	case known && free < uint64(db.minFree):
		return fmt.Errorf("sqlite: %d bytes free on the store's file system, below the minimum of %d", free, db.minFree)
	}
	return nil
}
