package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func TestFreshDatabases(t *testing.T) {
	ctx := context.Background()
	var names []string
	for range 2 {
		conn, err := pgx.Connect(ctx, Start(t))
		if err != nil {
			t.Fatal(err)
		}
		var name string
		if err := conn.QueryRow(ctx, `SELECT current_database()`).Scan(&name); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `CREATE TABLE t (k int)`); err != nil {
			t.Fatalf("a fresh database has table t already: %v", err)
		}
		conn.Close(ctx)
		names = append(names, name)
	}
	if names[0] == names[1] {
		t.Fatalf("both tests got database %s", names[0])
	}
}
