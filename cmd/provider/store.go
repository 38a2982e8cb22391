package provider

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/follower"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/postgres"
	"github.com/mimids/mimids/sqlite"
)

// Store drivers (store.driver).
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Store is what a provider runs on: every domain Store interface, and what the
// wiring needs of the store itself. SQLite (the default) and PostgreSQL implement
// it (OpenStore, ServeStore).
type Store interface {
	directory.Store
	directory.KeyPackageStore
	directory.KeyPackageRefStore
	directory.DiscoveryStore
	directory.PolicyStore
	directory.GatewayKeyStore
	directory.AdminStore
	mailbox.Store
	hub.Store
	federation.Store
	federation.LeaseStore
	follower.CopyStore
	follower.Routes

	// Driver is DriverSQLite or DriverPostgres.
	Driver() string
	// Path names the store in messages (its file, or its database).
	Path() string
	// IncarnationID is the store's incarnation as it was opened (auth_ok).
	IncarnationID() []byte
	// Minted is why this open gave the store a new incarnation, or "".
	Minted() string
	// Ready is what /readyz reports of the store.
	Ready(ctx context.Context) []gateway.ReadyCheck
	SchemaVersion(ctx context.Context) (int, error)
	// MailboxDepth is every entry waiting in a mailbox (the dashboard's overview).
	MailboxDepth(ctx context.Context) (int64, error)
	// TotalRows counts the rows of every table.
	TotalRows(ctx context.Context) (int64, error)
	Close() error

	// The hub's record of each follower's progress (cmd/provider/subscriptions.go).
	AddPushSub(ctx context.Context, peer string, masked []byte, from uint32) (PushSub, error)
	SetPushProgress(ctx context.Context, peer string, masked []byte, next uint32, done bool) error
	// RemovePushSub forgets a follower's subscription; it reports whether there was one.
	RemovePushSub(ctx context.Context, peer string, masked []byte) (bool, error)
	PushSubs(ctx context.Context) ([]PushSub, error)
}

// PushSub is one follower's subscription to a hosted partition.
type PushSub = hub.PushSub

// SQLite returns the SQLite store under s, for what only SQLite does (backups,
// integrity checks, mark files); ok is false on another driver.
func SQLite(s Store) (db *sqlite.DB, ok bool) {
	if l, ok := s.(sqliteStore); ok {
		return l.DB, true
	}
	return nil, false
}

// Postgres returns the PostgreSQL store under s; ok is false on another driver.
func Postgres(s Store) (db *postgres.DB, ok bool) {
	if p, ok := s.(pgStore); ok {
		return p.DB, true
	}
	return nil, false
}

// WrapSQLite makes an open SQLite store a provider's Store.
func WrapSQLite(db *sqlite.DB) Store { return sqliteStore{db} }

// WrapPostgres makes an open PostgreSQL store a provider's Store.
func WrapPostgres(db *postgres.DB) Store { return pgStore{db} }

// OpenStore opens the provider's store for an admin command, which works beside
// running servers.
func OpenStore(ctx context.Context, cfg Config) (Store, error) {
	if cfg.Store.Driver == DriverPostgres {
		return openPostgres(ctx, cfg)
	}
	db, err := sqlite.Open(ctx, cfg.StorePath(), sqlite.Options{Synchronous: cfg.Store.Synchronous})
	if err != nil {
		return nil, err
	}
	return sqliteStore{db}, nil
}

// ServeStore opens the store for the server. On SQLite it holds the store's lock
// (one server per store), runs the configured integrity check, keeps the mark file
// that detects a store gone back in time, and probes the disk for /readyz; on
// PostgreSQL, several servers (the nodes of one provider) share the database.
func ServeStore(ctx context.Context, cfg Config) (Store, error) {
	if cfg.Store.Driver == DriverPostgres {
		return openPostgres(ctx, cfg)
	}
	db, err := sqlite.Open(ctx, cfg.StorePath(), sqlite.Options{Synchronous: cfg.Store.Synchronous, Owner: true,
		IntegrityCheck: cfg.Store.IntegrityCheck, ForceNew: cfg.Store.ForceNew, MinFreeBytes: cfg.Store.MinFreeBytes})
	if err != nil {
		return nil, err
	}
	return sqliteStore{db}, nil
}

func openPostgres(ctx context.Context, cfg Config) (Store, error) {
	db, err := postgres.Open(ctx, cfg.Store.DSN, postgres.Options{MaxConns: cfg.Store.MaxConns})
	if err != nil {
		return nil, err
	}
	return pgStore{db}, nil
}

// sqliteStore is a Store on SQLite.
type sqliteStore struct{ *sqlite.DB }

func (sqliteStore) Driver() string          { return DriverSQLite }
func (s sqliteStore) IncarnationID() []byte { return s.Incarnation().ID }
func (s sqliteStore) Minted() string        { return s.Incarnation().Minted }
func (s sqliteStore) Ready(ctx context.Context) []gateway.ReadyCheck {
	h := s.Health(ctx)
	return []gateway.ReadyCheck{{Name: "store_read", Err: h.Read}, {Name: "store_write", Err: h.Write}, {Name: "store_disk", Err: h.Disk}}
}

// pgStore is a Store on PostgreSQL.
type pgStore struct{ *postgres.DB }

func (pgStore) Driver() string          { return DriverPostgres }
func (s pgStore) IncarnationID() []byte { return s.Incarnation().ID }
func (s pgStore) Minted() string        { return "" }

// Ready probes a read and a commit; the database server watches its own disk.
func (s pgStore) Ready(ctx context.Context) []gateway.ReadyCheck {
	h := s.Health(ctx)
	return []gateway.ReadyCheck{{Name: "store_read", Err: h.Read}, {Name: "store_write", Err: h.Write}}
}

// storeDescription is where the store is, for the startup banner.
func storeDescription(s Store) string { return fmt.Sprintf("%s (%s)", s.Path(), s.Driver()) }

// CopySQLiteToPostgres copies the provider's SQLite store (cfg.StorePath(), which
// no server may be running on) into the empty PostgreSQL database dsn names; the
// copy keeps the store's incarnation. The SQLite store is migrated to the current
// schema first and left as it was otherwise.
func CopySQLiteToPostgres(ctx context.Context, cfg Config, dsn string) (postgres.CopyStats, error) {
	path := cfg.StorePath()
	served, err := sqlite.Served(path)
	if err != nil {
		return nil, err
	}
	if served {
		return nil, fmt.Errorf("store copy: a server is running on %s: stop it first (the copy would miss its later writes)", path)
	}
	src, err := sqlite.Open(ctx, path, sqlite.Options{Synchronous: cfg.Store.Synchronous})
	if err != nil {
		return nil, err
	}
	if err := src.Close(); err != nil {
		return nil, err
	}
	raw, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		return nil, fmt.Errorf("store copy: %w", err)
	}
	defer raw.Close()
	dst, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		return nil, err
	}
	defer dst.Close()
	return dst.CopyFrom(ctx, raw)
}
