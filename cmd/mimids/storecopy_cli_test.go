package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mimids/mimids/postgres/pgtest"
)

// TestStoreCopyAndMigrateCLI: the operator's path from SQLite to PostgreSQL with
// the CLI: migrate the SQLite store, copy it, migrate and read the copy through a
// configuration with store.driver postgres; a second copy and the SQLite-only verbs
// on postgres are refused with the reason.
func TestStoreCopyAndMigrateCLI(t *testing.T) {
	srv := pgtest.StartServer(t)
	dir := t.TempDir()
	if code, _, errs := mimids(t, "user", "add", "-data", dir, "alice"); code != 0 {
		t.Fatalf("user add: %d %s", code, errs)
	}
	if code, out, errs := mimids(t, "migrate", "-data", dir); code != 0 || !strings.HasPrefix(out, "sqlite store ") {
		t.Fatalf("migrate (sqlite): %d %q %s", code, out, errs)
	}
	cfg := filepath.Join(t.TempDir(), "mimids.json")
	b, _ := json.Marshal(map[string]any{"data_dir": dir, "store": map[string]any{"driver": "postgres", "dsn": srv.DSN("postgres")}})
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := mimids(t, "store", "copy", "-config", cfg, "-from", "sqlite", "-to", "postgres")
	if code != 0 || !strings.Contains(out, "users 1") {
		t.Fatalf("store copy: %d %q %s", code, out, errs)
	}
	if code, _, errs := mimids(t, "store", "copy", "-config", cfg); code != 1 || !strings.Contains(errs, "not empty") {
		t.Fatalf("second store copy: %d %s, want refused: not empty", code, errs)
	}
	if code, out, errs := mimids(t, "migrate", "-config", cfg); code != 0 || !strings.HasPrefix(out, "postgres store ") {
		t.Fatalf("migrate (postgres): %d %q %s", code, out, errs)
	}
	if code, out, errs := mimids(t, "user", "list", "-config", cfg); code != 0 || !strings.Contains(out, "alice") {
		t.Fatalf("user list on the copy: %d %q %s", code, out, errs)
	}
	if code, _, errs := mimids(t, "store", "check", "-config", cfg); code != 1 || !strings.Contains(errs, "sqlite store only") {
		t.Fatalf("store check on postgres: %d %s", code, errs)
	}
	if code, out, errs := mimids(t, "store", "mint", "-config", cfg, "-reason", "test"); code != 0 || !strings.HasPrefix(out, "new incarnation: ") {
		t.Fatalf("store mint: %d %q %s", code, out, errs)
	}
}
