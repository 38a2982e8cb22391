package directory

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
)

// Admin passwords are hashed with argon2id at these parameters (the OWASP
// minimum: 19 MiB, 2 passes, 1 lane); the encoded hash carries them, so they can
// grow without invalidating stored passwords.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	// MinAdminPassword and MaxAdminPassword bound an admin password's length in bytes.
	MinAdminPassword = 12
	MaxAdminPassword = 256
)

var (
	// ErrBadLogin is a login refused: unknown name, wrong password or token, revoked
	// or expired token. It never says which.
	ErrBadLogin = errors.New("directory: bad login")
	// ErrWeakPassword is an admin password too short or too long.
	ErrWeakPassword = errors.New("directory: unacceptable password")
)

// AdminPassword is one stored admin password.
type AdminPassword struct {
	Name      string
	Hash      string // argon2id, encoded with its parameters and salt
	ReadOnly  bool
	UpdatedAt time.Time
}

// AuditEntry is one admin change: who made it, what, when.
type AuditEntry struct {
	ID     int64
	At     time.Time
	Actor  string // "token:NAME#ID" or "password:NAME"
	Action string // e.g. "client.revoke"
	Detail string
}

// AdminStore is what Admins needs from storage.
type AdminStore interface {
	// PutAdminPassword sets (adds or replaces) the password of p.Name.
	PutAdminPassword(ctx context.Context, p AdminPassword) error
	// AdminPassword returns the password of name, or ErrNotFound.
	AdminPassword(ctx context.Context, name string) (AdminPassword, error)
	// AppendAudit appends e (e.ID is assigned).
	AppendAudit(ctx context.Context, e AuditEntry) (AuditEntry, error)
	// Audit lists up to limit entries with ID below before (0: from the newest),
	// newest first.
	Audit(ctx context.Context, before int64, limit int) ([]AuditEntry, error)
	// SearchUsers lists up to limit users whose names start with prefix and sort
	// after after, in name order (an indexed range scan).
	SearchUsers(ctx context.Context, prefix, after string, limit int) ([]User, error)
}

// AdminPrincipal is who is logged in to the dashboard.
type AdminPrincipal struct {
	Kind     string // "token" or "password"
	Name     string
	TokenID  int64     // for Kind "token"
	Since    time.Time // the password's UpdatedAt when logged in with one
	ReadOnly bool
}

// String names the principal in the audit log.
func (p AdminPrincipal) String() string {
	if p.Kind == "token" {
		return fmt.Sprintf("token:%s#%d", p.Name, p.TokenID)
	}
	return "password:" + p.Name
}

// Admins is the admin accounts (tokens and passwords) and the audit log.
type Admins struct {
	// Static after construction.
	dir   *Directory
	store AdminStore

	dummyOnce sync.Once
	dummy     string // a hash checked when the name is unknown, so timing tells nothing; set by dummyOnce
}

// NewAdmins returns the admin accounts of d over store.
func NewAdmins(d *Directory, store AdminStore) *Admins {
	return &Admins{dir: d, store: store}
}

// SetPassword sets the dashboard password of an admin name.
func (a *Admins) SetPassword(ctx context.Context, name, password string, readOnly bool) error {
	if err := ValidAdminTokenName(name); err != nil {
		return err
	}
	if len(password) < MinAdminPassword || len(password) > MaxAdminPassword {
		return fmt.Errorf("%w: want %d to %d bytes", ErrWeakPassword, MinAdminPassword, MaxAdminPassword)
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	p := AdminPassword{Name: name, Hash: hashPassword(password, salt), ReadOnly: readOnly,
		UpdatedAt: a.dir.now().UTC().Truncate(time.Millisecond)}
	if err := a.store.PutAdminPassword(ctx, p); err != nil {
		return fmt.Errorf("directory: set admin password: %w", err)
	}
	return nil
}

// LoginPassword checks an admin name and password.
func (a *Admins) LoginPassword(ctx context.Context, name, password string) (AdminPrincipal, error) {
	if len(name) > 64 || len(password) > MaxAdminPassword {
		return AdminPrincipal{}, ErrBadLogin
	}
	p, err := a.store.AdminPassword(ctx, name)
	if errors.Is(err, ErrNotFound) {
		a.dummyOnce.Do(func() { a.dummy = hashPassword("not a password at all", make([]byte, 16)) })
		checkPassword(a.dummy, password)
		return AdminPrincipal{}, ErrBadLogin
	}
	if err != nil {
		return AdminPrincipal{}, fmt.Errorf("directory: admin login: %w", err)
	}
	if !checkPassword(p.Hash, password) {
		return AdminPrincipal{}, ErrBadLogin
	}
	return AdminPrincipal{Kind: "password", Name: p.Name, Since: p.UpdatedAt, ReadOnly: p.ReadOnly}, nil
}

// LoginToken checks an admin token (never a client's token: those have another
// prefix and live in another table).
func (a *Admins) LoginToken(ctx context.Context, token string) (AdminPrincipal, error) {
	t, ok, err := a.dir.AdminTokenFor(ctx, token)
	if err != nil {
		return AdminPrincipal{}, err
	}
	if !ok {
		return AdminPrincipal{}, ErrBadLogin
	}
	return AdminPrincipal{Kind: "token", Name: t.Name, TokenID: t.ID, ReadOnly: t.ReadOnly}, nil
}

// Check reports ErrBadLogin when a principal no longer holds: its token was revoked
// or expired, or its password changed or was removed.
func (a *Admins) Check(ctx context.Context, p AdminPrincipal) error {
	switch p.Kind {
	case "token":
		ts, err := a.dir.ListAdminTokens(ctx)
		if err != nil {
			return err
		}
		now := a.dir.now()
		for _, t := range ts {
			if t.ID == p.TokenID && t.Active(now) {
				return nil
			}
		}
	case "password":
		pw, err := a.store.AdminPassword(ctx, p.Name)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if err == nil && pw.UpdatedAt.Equal(p.Since) {
			return nil
		}
	}
	return ErrBadLogin
}

// Record writes one admin change to the audit log.
func (a *Admins) Record(ctx context.Context, actor, action, detail string) error {
	_, err := a.store.AppendAudit(ctx, AuditEntry{At: a.dir.now().UTC().Truncate(time.Millisecond),
		Actor: actor, Action: action, Detail: detail})
	if err != nil {
		return fmt.Errorf("directory: audit: %w", err)
	}
	return nil
}

// Audit lists the audit log newest first: up to limit entries below id before (0:
// from the newest).
func (a *Admins) Audit(ctx context.Context, before int64, limit int) ([]AuditEntry, error) {
	return a.store.Audit(ctx, before, min(max(limit, 1), 500))
}

// SearchUsers lists up to limit users whose names start with prefix, after the name
// after, in name order.
func (a *Admins) SearchUsers(ctx context.Context, prefix, after string, limit int) ([]User, error) {
	return a.store.SearchUsers(ctx, prefix, after, min(max(limit, 1), 500))
}

func hashPassword(password string, salt []byte) string {
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// checkPassword reports whether password matches an encoded argon2id hash.
func checkPassword(encoded, password string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m > 1<<20 || t > 16 || p == 0 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}
