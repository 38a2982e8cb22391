package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

const (
	// healthEvery is how long a Health answer is reused: however often /readyz is
	// asked, the store sees at most one probe write per interval.
	healthEvery = time.Second
	// probeTimeout bounds a probe.
	probeTimeout = 5 * time.Second
)

// Health is the state of the store's parts, each nil while it works. Disk is
// always nil: the database server watches its own disk.
type Health struct {
	Read  error // a read query failed (the server is down or unreachable)
	Write error // a commit failed (read-only standby, full disk, ...)
	Disk  error
	At    time.Time
}

// health caches the latest probe. Guarded by mu.
type health struct {
	mu      sync.Mutex
	last    Health
	running chan struct{} // closed when the probe in flight ends; nil when none
	started time.Time
}

// Health probes the store: a read and a commit of one row in store_probe. An
// answer is reused for a second, concurrent callers share one probe, and a caller
// whose ctx ends before the probe does gets the write reported as not answering.
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
		return Health{At: time.Now(), Write: fmt.Errorf("postgres: probe: no commit after %s", time.Since(started).Round(time.Millisecond))}
	}
}

func (db *DB) probe(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	var h Health
	if err := db.Ping(ctx); err != nil {
		h.Read = fmt.Errorf("postgres: probe read: %w", err)
	}
	if err := db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO store_probe (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = excluded.at`,
			time.Now().UnixMilli())
		return err
	}); err != nil {
		h.Write = fmt.Errorf("postgres: probe write: %w", err)
	}
	h.At = time.Now()
	db.health.mu.Lock()
	db.health.last, db.health.running = h, nil
	db.health.mu.Unlock()
	close(done)
}
