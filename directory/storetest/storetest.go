// Package storetest is the conformance suite every directory.Store backend must pass.
package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mimids/mimids/directory"
)

// Run runs the suite; newStore returns an empty store that lives for the test.
func Run(t *testing.T, newStore func(t *testing.T) directory.Store) {
	ctx := context.Background()
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

	t.Run("users", func(t *testing.T) {
		s := newStore(t)
		u, err := s.CreateUser(ctx, "alice", at)
		if err != nil || u.ID == 0 || u.Name != "alice" || !u.CreatedAt.Equal(at) {
			t.Fatalf("CreateUser = %+v, %v", u, err)
		}
		if _, err := s.CreateUser(ctx, "alice", at); !errors.Is(err, directory.ErrExists) {
			t.Fatalf("duplicate user: %v, want ErrExists", err)
		}
		if _, err := s.User(ctx, "bob"); !errors.Is(err, directory.ErrNotFound) {
			t.Fatalf("missing user: %v, want ErrNotFound", err)
		}
		s.CreateUser(ctx, "bob", at)
		us, err := s.ListUsers(ctx)
		if err != nil || len(us) != 2 || us[0].Name != "alice" || us[1].Name != "bob" {
			t.Fatalf("ListUsers = %+v, %v", us, err)
		}
	})

	t.Run("clients and tokens", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.CreateClient(ctx, "alice", "phone", []byte("h1"), false, at); !errors.Is(err, directory.ErrNotFound) {
			t.Fatalf("client of missing user: %v", err)
		}
		c, err := s.CreateClient(ctx, "alice", "phone", []byte("h1"), true, at)
		if err != nil || c.ID == 0 || c.UserName != "alice" || c.Name != "phone" {
			t.Fatalf("CreateClient = %+v, %v", c, err)
		}
		if _, err := s.CreateClient(ctx, "alice", "phone", []byte("h2"), false, at); !errors.Is(err, directory.ErrExists) {
			t.Fatalf("duplicate client: %v", err)
		}
		got, err := s.ClientByTokenHash(ctx, []byte("h1"))
		if err != nil || got.ID != c.ID || got.Revoked() {
			t.Fatalf("ClientByTokenHash = %+v, %v", got, err)
		}
		if _, err := s.ClientByTokenHash(ctx, []byte("nope")); !errors.Is(err, directory.ErrNotFound) {
			t.Fatalf("unknown token: %v", err)
		}
		r, err := s.RevokeClient(ctx, "alice", "phone", at.Add(time.Minute))
		if err != nil || !r.Revoked() {
			t.Fatalf("RevokeClient = %+v, %v", r, err)
		}
		if got, _ := s.ClientByTokenHash(ctx, []byte("h1")); !got.Revoked() {
			t.Fatal("revoked client reads back active")
		}
		ch, err := s.Changes(ctx, 0, 10)
		if err != nil || len(ch) != 1 || ch[0].Kind != directory.ChangeRevoked || ch[0].ClientID != c.ID {
			t.Fatalf("Changes = %+v, %v", ch, err)
		}
		if more, _ := s.Changes(ctx, ch[0].ID, 10); len(more) != 0 {
			t.Fatalf("Changes after last = %+v", more)
		}
		if _, err := s.RevokeClient(ctx, "alice", "tablet", at); !errors.Is(err, directory.ErrNotFound) {
			t.Fatalf("revoke missing: %v", err)
		}
		s.CreateClient(ctx, "alice", "laptop", []byte("h3"), false, at)
		cs, err := s.ListClients(ctx, "alice")
		if err != nil || len(cs) != 2 || cs[0].Name != "laptop" {
			t.Fatalf("ListClients = %+v, %v", cs, err)
		}
		removed, err := s.DeleteUser(ctx, "alice")
		if err != nil || len(removed) != 2 {
			t.Fatalf("DeleteUser = %+v, %v", removed, err)
		}
		if _, err := s.ClientByID(ctx, c.ID); !errors.Is(err, directory.ErrNotFound) {
			t.Fatalf("client of deleted user: %v", err)
		}
		if _, err := s.DeleteUser(ctx, "alice"); !errors.Is(err, directory.ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
	})

	t.Run("admin tokens", func(t *testing.T) { runAdminTokens(t, newStore(t), at) })
}

// RunIDs checks that ids of removed clients are never given to new ones: the change
// log names clients by id, and a reused id would let an old revocation close a new
// client's sockets.
func RunIDs(t *testing.T, newStore func(t *testing.T) directory.Store) {
	ctx := context.Background()
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	s := newStore(t)
	old, err := s.CreateClient(ctx, "alice", "phone", []byte("h1"), true, at)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	c, err := s.CreateClient(ctx, "bob", "phone", []byte("h2"), true, at)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID == old.ID || c.UserID == old.UserID {
		t.Fatalf("new client got the removed client's id %d (user %d)", c.ID, c.UserID)
	}
}
