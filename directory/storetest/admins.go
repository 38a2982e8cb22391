package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mimids/mimids/directory"
)

// AdminBackend is a store of users with admin passwords and the audit log.
type AdminBackend interface {
	directory.Store
	directory.AdminStore
}

// RunAdmins checks an AdminStore: passwords, the audit log (newest first, by
// position) and the user search (prefix, order, keyset pages).
func RunAdmins(t *testing.T, newStore func(t *testing.T) AdminBackend) {
	ctx := context.Background()
	at := time.UnixMilli(1_700_000_000_000).UTC()
	t.Run("passwords", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.AdminPassword(ctx, "ops"); !errors.Is(err, directory.ErrNotFound) {
			t.Fatalf("unknown: %v", err)
		}
		for _, p := range []directory.AdminPassword{{Name: "ops", Hash: "h1", UpdatedAt: at}, {Name: "ops", Hash: "h2", ReadOnly: true, UpdatedAt: at.Add(time.Second)}} {
			if err := s.PutAdminPassword(ctx, p); err != nil {
				t.Fatal(err)
			}
			got, err := s.AdminPassword(ctx, "ops")
			if err != nil || got != p {
				t.Fatalf("got %+v %v, want %+v", got, err, p)
			}
		}
	})
	t.Run("read-only token", func(t *testing.T) {
		s := newStore(t)
		for _, ro := range []bool{false, true} {
			hash := []byte(fmt.Sprint("hash-", ro))
			if _, err := s.CreateAdminToken(ctx, directory.AdminToken{Name: "t", CreatedAt: at, ReadOnly: ro}, hash); err != nil {
				t.Fatal(err)
			}
			got, err := s.AdminTokenByHash(ctx, hash)
			if err != nil || got.ReadOnly != ro {
				t.Fatalf("read-only %v: got %+v %v", ro, got, err)
			}
		}
	})
	t.Run("audit", func(t *testing.T) {
		s := newStore(t)
		var ids []int64
		for i := 0; i < 5; i++ {
			e, err := s.AppendAudit(ctx, directory.AuditEntry{At: at, Actor: "token:ops#1", Action: "user.add", Detail: fmt.Sprint(i)})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, e.ID)
		}
		es, err := s.Audit(ctx, 0, 3)
		if err != nil || len(es) != 3 || es[0].Detail != "4" || es[2].Detail != "2" || !es[0].At.Equal(at) || es[0].Actor != "token:ops#1" {
			t.Fatalf("newest 3: %+v %v", es, err)
		}
		es, err = s.Audit(ctx, es[2].ID, 10)
		if err != nil || len(es) != 2 || es[0].Detail != "1" || es[1].ID != ids[0] {
			t.Fatalf("older: %+v %v", es, err)
		}
	})
	t.Run("search users", func(t *testing.T) {
		s := newStore(t)
		for _, n := range []string{"bob", "alice", "al", "alz", "am", "a.b", "carol"} {
			if _, err := s.CreateUser(ctx, n, at); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			prefix, after string
			limit         int
			want          string
		}{
			{"", "", 10, "a.b al alice alz am bob carol"},
			{"al", "", 10, "al alice alz"},
			{"al", "al", 10, "alice alz"},
			{"al", "", 2, "al alice"},
			{"", "alz", 2, "am bob"},
			{"z", "", 10, ""},
			{"a", "am", 10, ""},
		} {
			us, err := s.SearchUsers(ctx, c.prefix, c.after, c.limit)
			got := ""
			for i, u := range us {
				if i > 0 {
					got += " "
				}
				got += u.Name
			}
			if err != nil || got != c.want {
				t.Errorf("SearchUsers(%q, %q, %d) = %q %v, want %q", c.prefix, c.after, c.limit, got, err, c.want)
			}
		}
	})
}
