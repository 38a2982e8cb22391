// Package directory owns the users and clients (devices) of this provider: their MIMI
// URIs, device tokens (random, stored only as hashes, revocable) and admin
// credentials; their KeyPackages (upload with RFC 9420 validation, atomic claims,
// last resorts, low-stock notices, the served KeyPackageRef -> client mapping for
// Welcome routing); discovery with its bearer tokens; the Oblivious HTTP gateway's
// keys; and the provider-wide policy (bans, own users' rate limits, reports) that
// both the hub and the follower enforce. The wire structs are in package protocol.
package directory

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"time"

	"github.com/mimids/mimids/protocol"
)

var (
	ErrNotFound    = errors.New("directory: not found")
	ErrExists      = errors.New("directory: already exists")
	ErrInvalidName = protocol.ErrInvalidName
	ErrBadToken    = errors.New("directory: unknown or revoked token")
)

// User is one account of this provider.
type User struct {
	ID        int64
	Name      string
	CreatedAt time.Time
}

// Client is one device of a user. Each client has its own token and mailbox.
type Client struct {
	ID        int64
	UserID    int64
	UserName  string
	Name      string
	CreatedAt time.Time
	RevokedAt time.Time // zero while the client is active
}

// Revoked reports whether the client's token was revoked.
func (c Client) Revoked() bool { return !c.RevokedAt.IsZero() }

// Change is something another process (the admin CLI) did to the store that a running
// server must act on.
type Change struct {
	ID       int64
	Kind     string // ChangeRevoked or ChangeMailbox
	ClientID int64  // 0: every client
	Entries  int    // ChangeMailbox: the mailbox entries the other process committed
}

const (
	ChangeRevoked = "client_revoked"
	ChangeMailbox = "mailbox"
)

// Store is what the directory needs from storage.
type Store interface {
	CreateUser(ctx context.Context, name string, at time.Time) (User, error)
	User(ctx context.Context, name string) (User, error)
	ListUsers(ctx context.Context) ([]User, error)
	// DeleteUser removes the user, its clients and their mailboxes, and returns the
	// clients that were removed.
	DeleteUser(ctx context.Context, name string) ([]Client, error)
	// CreateClient adds a client with the token hash; with createUser the user is
	// created if missing.
	CreateClient(ctx context.Context, user, client string, tokenHash []byte, createUser bool, at time.Time) (Client, error)
	ListClients(ctx context.Context, user string) ([]Client, error)
	// RevokeClient marks the client revoked and records a ChangeRevoked.
	RevokeClient(ctx context.Context, user, client string, at time.Time) (Client, error)
	// ClientByTokenHash finds an active or revoked client by its token hash.
	ClientByTokenHash(ctx context.Context, hash []byte) (Client, error)
	ClientByID(ctx context.Context, id int64) (Client, error)
	// CreateAdminToken stores an admin credential (t.ID is assigned; t.Name,
	// t.CreatedAt and t.ExpiresAt are stored as given).
	CreateAdminToken(ctx context.Context, t AdminToken, hash []byte) (AdminToken, error)
	// AdminTokenByHash finds an admin token, revoked and expired ones included
	// (ErrNotFound when none has that hash).
	AdminTokenByHash(ctx context.Context, hash []byte) (AdminToken, error)
	// ListAdminTokens lists every admin token, revoked and expired ones included, by id.
	ListAdminTokens(ctx context.Context) ([]AdminToken, error)
	// RevokeAdminToken marks token id revoked at at (ErrNotFound when there is none);
	// revoking again keeps the first time.
	RevokeAdminToken(ctx context.Context, id int64, at time.Time) (AdminToken, error)
	// TouchAdminToken records that token id authenticated a request at at.
	TouchAdminToken(ctx context.Context, id int64, at time.Time) error
	// CountAdminTokens counts every admin token ever created, revoked and expired
	// ones included.
	CountAdminTokens(ctx context.Context) (int, error)
	// Changes returns the changes recorded after id, oldest first.
	Changes(ctx context.Context, after int64, limit int) ([]Change, error)
	// RecordChange appends c to the change log (c.ID is assigned).
	RecordChange(ctx context.Context, c Change, at time.Time) error
}

// Directory is the user and client registry of one provider.
type Directory struct {
	// Static after construction.
	store  Store
	domain string
	now    func() time.Time
}

// New returns a Directory for the provider domain.
func New(store Store, domain string) *Directory {
	return &Directory{store: store, domain: domain, now: time.Now}
}

// Domain is the provider's domain.
func (d *Directory) Domain() string { return d.domain }

// NamePrefixEnd is the least name above every name that starts with p: a search
// by prefix is the range [p, NamePrefixEnd(p)) of a bytewise name index (names are
// ASCII, so the last byte below 0x7f can grow).
func NamePrefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0x7f {
			b[i]++
			return string(b[:i+1])
		}
	}
	return p + "\x7f"
}

// ValidName reports whether s can name a user or client (protocol.ValidName).
func ValidName(s string) error { return protocol.ValidName(s) }

// UserURI is the MIMI URI of a user of this provider.
func (d *Directory) UserURI(user string) string { return protocol.UserURI(d.domain, user) }

// ClientURI is the MIMI URI of a client of this provider.
func (d *Directory) ClientURI(c Client) string {
	return protocol.ClientURI(d.domain, c.UserName, c.Name)
}

// AddUser creates a user.
func (d *Directory) AddUser(ctx context.Context, name string) (User, error) {
	if err := ValidName(name); err != nil {
		return User{}, err
	}
	return d.store.CreateUser(ctx, name, d.now())
}

// RemoveUser deletes a user with its clients and mailboxes; their live sockets are
// closed by the caller (the returned clients).
func (d *Directory) RemoveUser(ctx context.Context, name string) ([]Client, error) {
	cs, err := d.store.DeleteUser(ctx, name)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if err := d.store.RecordChange(ctx, Change{Kind: ChangeRevoked, ClientID: c.ID}, d.now()); err != nil {
			return cs, err
		}
	}
	return cs, nil
}

// AddClient creates a client and returns it with its device token. The token is shown
// only here: the store keeps its hash.
func (d *Directory) AddClient(ctx context.Context, user, client string, createUser bool) (Client, string, error) {
	if err := ValidName(user); err != nil {
		return Client{}, "", err
	}
	if err := ValidName(client); err != nil {
		return Client{}, "", err
	}
	token := NewToken("mdt_")
	c, err := d.store.CreateClient(ctx, user, client, HashToken(token), createUser, d.now())
	if err != nil {
		return Client{}, "", err
	}
	return c, token, nil
}

// User returns a user by name.
func (d *Directory) User(ctx context.Context, name string) (User, error) {
	return d.store.User(ctx, name)
}

// ListUsers lists every user, by name.
func (d *Directory) ListUsers(ctx context.Context) ([]User, error) { return d.store.ListUsers(ctx) }

// ListClients lists a user's clients.
func (d *Directory) ListClients(ctx context.Context, user string) ([]Client, error) {
	return d.store.ListClients(ctx, user)
}

// Changes returns the changes other processes recorded after id, oldest first.
func (d *Directory) Changes(ctx context.Context, after int64, limit int) ([]Change, error) {
	return d.store.Changes(ctx, after, limit)
}

// RecordChange tells a running server (through the change log) what this process
// changed in the store: a ChangeMailbox with the entries it committed, a ChangeRevoked,
// or a change of another part (its own kind string).
func (d *Directory) RecordChange(ctx context.Context, c Change) error {
	return d.store.RecordChange(ctx, c, d.now())
}

// RevokeClient revokes a client's token; Changes reports it to a running server.
func (d *Directory) RevokeClient(ctx context.Context, user, client string) (Client, error) {
	return d.store.RevokeClient(ctx, user, client, d.now())
}

// Authenticate returns the active client that owns token.
func (d *Directory) Authenticate(ctx context.Context, token []byte) (Client, error) {
	if len(token) == 0 || len(token) > 256 {
		return Client{}, ErrBadToken
	}
	c, err := d.store.ClientByTokenHash(ctx, HashToken(string(token)))
	if errors.Is(err, ErrNotFound) || (err == nil && c.Revoked()) {
		return Client{}, ErrBadToken
	}
	return c, err
}

// NewToken returns prefix followed by 32 random bytes in unpadded base64url.
func NewToken(prefix string) string {
	var b [32]byte
	rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// HashToken is how tokens are stored: SHA-256 of the token string.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
