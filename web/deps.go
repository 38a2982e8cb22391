package web

import (
	"context"
	"errors"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/ohttp"
	"github.com/mimids/mimids/protocol"
)

// Admins logs admins in and keeps the audit log (directory.Admins).
type Admins interface {
	LoginToken(ctx context.Context, token string) (directory.AdminPrincipal, error)
	LoginPassword(ctx context.Context, name, password string) (directory.AdminPrincipal, error)
	// Check reports an error when a principal no longer holds (token revoked,
	// password changed).
	Check(ctx context.Context, p directory.AdminPrincipal) error
	Record(ctx context.Context, actor, action, detail string) error
	Audit(ctx context.Context, before int64, limit int) ([]directory.AuditEntry, error)
	SearchUsers(ctx context.Context, prefix, after string, limit int) ([]directory.User, error)
}

// Users is the user directory (directory.Directory).
type Users interface {
	UserURI(user string) string
	ClientURI(c directory.Client) string
	AddUser(ctx context.Context, name string) (directory.User, error)
	AddClient(ctx context.Context, user, client string, createUser bool) (directory.Client, string, error)
	RevokeClient(ctx context.Context, user, client string) (directory.Client, error)
	ListClients(ctx context.Context, user string) ([]directory.Client, error)
}

// Sockets are the gateway's live client sockets (gateway.Server).
type Sockets interface {
	// ClientSockets is a client's live sockets and when it was last seen.
	ClientSockets(clientID int64) (int, time.Time)
	// Revoke closes a revoked client's sockets (4003), on every node of the
	// provider, and returns how many this node closed.
	Revoke(clientID int64, reason string) int
}

// KeyPackages reports a client's KeyPackage stock (directory.KeyPackages).
type KeyPackages interface {
	Stock(ctx context.Context, c directory.Client) ([]protocol.KeyPackageStock, error)
}

// Groups are the hosted groups (hub.Hub).
type Groups interface {
	Groups(ctx context.Context, after []byte, limit int) ([]hub.Group, error)
	Partitions(ctx context.Context, groupID []byte) ([]hub.PartitionInfo, error)
	Terminate(ctx context.Context, groupID, masked []byte) error
	// View is what the hub sees of a partition: members, moderation list.
	View(ctx context.Context, masked []byte) (hub.PartitionView, error)
}

// Policy is the provider-wide policy (directory.Policy).
type Policy interface {
	ListBans(ctx context.Context) ([]directory.Ban, error)
	Ban(ctx context.Context, userURI, reason string) error
	Unban(ctx context.Context, userURI string) (bool, error)
	ListReports(ctx context.Context, limit int) ([]directory.StoredReport, error)
}

// Keys are the OHTTP gateway keys and discovery tokens.
type Keys interface {
	OHTTPKeys() []ohttp.KeyState
	RotateOHTTPKey(ctx context.Context) (uint8, error)
	DiscoveryTokens(ctx context.Context) (directory.TokenList, error)
	RevokeDiscoveryToken(ctx context.Context, id int64) error
	RotateDiscoverySecret(ctx context.Context) error
}

// Peer is one federation peer as the dashboard shows it.
type Peer struct {
	Domain, URL, State, LastError string
	Since, LastErrorAt            time.Time
	Attempts                      int
	Queue                         int64         // envelopes waiting for the peer's answer
	Lag                           time.Duration // age of the oldest of them
}

// ErrBadPeer is a peer that cannot be added: its message says why.
var ErrBadPeer = errors.New("web: bad peer")

// Peers is the federation allow-list and its links; nil without federation.
type Peers interface {
	Peers(ctx context.Context) ([]Peer, error)
	// AddPeer puts a peer on the allow-list, proven by a certificate pin (hex
	// SHA-256) or a CA bundle (PEM), exactly one; ErrBadPeer for bad input.
	AddPeer(ctx context.Context, domain, url, pin, caPEM string) error
	RemovePeer(ctx context.Context, domain string) (bool, error)
}

// Sample is one reading of the provider's counters (totals since start) and
// gauges.
type Sample struct {
	Connections     int
	Sequenced       float64 // messages sequenced by the hub
	Delivered       float64 // mailbox entries delivered to sockets
	MailboxDepth    int64
	FederationDepth int64
	Errors          map[string]float64 // client requests answered with an error, by code
}

// Metrics reads a Sample; it is called once a second by one goroutine.
type Metrics interface {
	Sample(ctx context.Context) (Sample, error)
}

// Deps are the parts the dashboard shows and steers. Peers may be nil.
type Deps struct {
	Admins      Admins
	Users       Users
	Sockets     Sockets
	KeyPackages KeyPackages
	Groups      Groups
	Policy      Policy
	Keys        Keys
	Peers       Peers
	Metrics     Metrics
}
