// Package follower serves this provider's clients in groups hosted by other
// providers: it forwards their requests to the group's hub over the federation
// link, follows the hubs' partitions its clients subscribe to and keeps local
// copies of their logs (Copies, docs/protocol.md §5.12), and enforces the hub's
// terms on this provider's own users (DESIGN.md, Federation).
//
// Forwarding (docs/protocol.md §5.10): send, receive, group_info and external_join
// for a group this provider does not host travel to the group's hub in a
// group_request envelope, and the hub's answer (or its error code) is the client's.
// The follower learns each group's hub from the Welcome flow (Welcomes:
// welcome_init and welcome envelopes, §5.9, accepting only KeyPackageRefs this
// provider served), and from a client that names the hub (group_info_at,
// external_join_at, §4). Without a link every forwarded request is answered
// ErrUnknownGroup (not_found), which is what a client of a provider without
// federation sees for a group not hosted here.
package follower

import (
	"context"
	"log/slog"
	"time"

	"github.com/mimids/mimids/protocol"
)

// ErrUnknownGroup means a group (or partition) this provider neither hosts nor
// follows.
var ErrUnknownGroup = protocol.NewError(protocol.CodeNotFound, "follower: unknown group")

// ErrHubUnreachable means the hub did not answer in time; the request may still
// be applied there later (the hub deduplicates a client's retry).
var ErrHubUnreachable = protocol.NewError(protocol.CodeUnavailable, "follower: the group's hub did not answer")

// Forwarded are the group methods a client may use for a group hosted elsewhere
// (creating a group always makes its creator's provider the hub).
var Forwarded = protocol.ForwardedMethods

// Hinted are the socket methods that name the hub (HubHinted), served by the
// follower only.
var Hinted = []protocol.Method{protocol.MethodGroupInfoAt, protocol.MethodExternalJoinAt}

// Link calls a peer provider over the federation link (federation.Links.Call).
type Link interface {
	// Call sends an envelope to peer and waits for the answer: the ack's body, or
	// an error carrying the peer's wire code.
	Call(ctx context.Context, peer string, typ protocol.EnvelopeType, body []byte) ([]byte, error)
}

// Config is what the follower forwards with.
type Config struct {
	// Domain is this provider's domain: a hint naming it is refused.
	Domain string
	Link   Link
	Routes Routes
	// Terms are the hubs' terms, enforced before forwarding (nil: none).
	Terms *Terms
	// Own is this provider's own policy (directory.Policy): its provider-wide bans
	// and its users' rate limit apply to its users in groups hosted elsewhere too,
	// before anything is forwarded (nil: none).
	Own OwnPolicy
	// Timeout bounds the wait for a hub's answer (default DefaultTimeout).
	Timeout time.Duration
	Logger  *slog.Logger
}

// OwnPolicy is this provider's own policy, as the hub applies it to local senders.
type OwnPolicy interface {
	// Banned reports whether this provider banned the user URI.
	Banned(ctx context.Context, userURI string) (bool, error)
	// Allow takes one request from the rate limit of key (a user URI).
	Allow(key string) bool
}

// Refusals by this provider's own policy, before forwarding.
var (
	ErrBannedHere      = protocol.NewError(protocol.CodePolicy, "follower: user banned by this provider")
	ErrRateLimitedHere = protocol.NewError(protocol.CodeRateLimited, "follower: over this provider's rate limit")
)

// DefaultTimeout is how long a forwarded request waits for the hub by default.
const DefaultTimeout = 10 * time.Second

// MaxCandidateHubs bounds the hubs a receive of an unknown partition is tried at:
// the hubs of the client's own groups, most recent first.
const MaxCandidateHubs = 4

// Follower is the follower role of a provider.
type Follower struct {
	// Static after New.
	cfg Config
	log *slog.Logger
}

// New returns the follower. With no Link or Routes it follows no group.
func New(cfg Config) *Follower {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Follower{cfg: cfg, log: log.With("part", "follower")}
}

// Methods is the follower's table of group methods (Forwarded and Hinted).
func (f *Follower) Methods() protocol.GroupMethods {
	if f.cfg.Link == nil || f.cfg.Routes == nil {
		m := make(protocol.GroupMethods, len(Forwarded))
		for _, id := range Forwarded {
			m[id] = func(context.Context, protocol.Sender, []byte) ([]byte, error) { return nil, ErrUnknownGroup }
		}
		return m
	}
	return protocol.GroupMethods{
		protocol.MethodSend:           f.send,
		protocol.MethodReceive:        f.receive,
		protocol.MethodGroupInfo:      f.groupInfo,
		protocol.MethodExternalJoin:   f.externalJoin,
		protocol.MethodGroupInfoAt:    f.groupInfoAt,
		protocol.MethodExternalJoinAt: f.externalJoinAt,
	}
}
