package hub

import (
	"context"
	"time"

	"github.com/mimids/mimids/mls"
)

// Group is a group this provider hosts.
type Group struct {
	GroupID       []byte
	CipherSuite   mls.CipherSuite
	CreatorClient int64  // the creating client of this provider
	CreatorUser   string // its user URI
	CreatedAt     time.Time
}

// Partition is one partition: the log of one epoch of one fork.
type Partition struct {
	Masked       []byte // Hash(partition_key) with the group's suite hash
	GroupID      []byte
	Parent       []byte // masked key of the partition whose commit opened it; nil for the first
	OpenedBy     uint32 // that commit's counter in Parent
	Epoch        uint64
	Verified     bool   // the hub verified the opening commit against Parent's public state
	GroupInfo    []byte // encoded MLSMessage(GroupInfo) opening the epoch; nil when none was given
	RatchetTree  []byte // encoded RatchetTree kept beside a GroupInfo without one (given or inferred)
	Length       uint32 // messages sequenced so far: the next counter
	Terminated   bool
	TerminatedAt time.Time
	CreatedAt    time.Time
}

// Entry is one sequenced message, or (Terminated set) the event that its
// partition was terminated after Counter messages.
type Entry struct {
	Masked      []byte
	Counter     uint32
	ContentType mls.ContentType
	Public      bool   // a PublicMessage
	Message     []byte // encoded MLSMessage
	NextMasked  []byte // commits: the masked key of the partition opened
	GroupInfo   []byte // commits: the GroupInfo given with it, if any
	Terminated  bool
}

// AppendRequest is one message to sequence.
type AppendRequest struct {
	Masked       []byte
	RequestHash  []byte // idempotence key, unique across the store
	ContentType  mls.ContentType
	Public       bool
	Message      []byte
	SenderClient int64
	// Next is the partition a commit opens (Masked, Epoch, Verified,
	// GroupInfo, RatchetTree); the store sets GroupID (the partition's),
	// Parent, OpenedBy and CreatedAt.
	Next     *Partition
	Welcomes []PendingWelcome
	At       time.Time
	// Checked makes the append conditional on the state the hub checked a
	// handshake against, the partition's handshakes before HandshakesSeen:
	// if a proposal or commit with counter >= HandshakesSeen is in the log
	// (another node sequenced it since), Append fails with ErrStale and
	// writes nothing. Application messages leave it unset.
	Checked        bool
	HandshakesSeen uint32
}

// AppendResult says where a message was sequenced.
type AppendResult struct {
	Masked     []byte // the partition (a duplicate's may differ from the request's)
	Counter    uint32
	Duplicate  bool    // the same request was sequenced before; nothing was written
	Fork       bool    // a commit to a partition that already had one
	WelcomeIDs []int64 // IDs of the stored Welcomes, in request order
}

// PendingWelcome is a Welcome waiting for delivery: to one of this
// provider's clients (ClientID set) or to another provider (ClientID 0).
type PendingWelcome struct {
	ID             int64
	GroupID        []byte
	Provider       string
	ClientID       int64
	KeyPackageRefs [][]byte
	Welcome        []byte // encoded MLSMessage(Welcome)
	CreatedAt      time.Time
}

// Store is what the hub needs from storage. Writes are atomic; Append and
// Terminate call published (if not nil) after their transaction commits and
// before any later write commits, so published entries of one partition
// come in counter order. Lookups of unknown things return errors wrapping
// ErrUnknownGroup, ErrUnknownPartition or ErrNotFound.
type Store interface {
	// CreateGroup stores a group, its first partition and Welcomes, or
	// fails with ErrGroupExists or ErrPartitionExists.
	CreateGroup(ctx context.Context, g Group, first Partition, welcomes []PendingWelcome) (welcomeIDs []int64, err error)
	Group(ctx context.Context, groupID []byte) (Group, error)
	// Groups lists groups with ID greater than after, in ID order.
	Groups(ctx context.Context, after []byte, limit int) ([]Group, error)
	Partition(ctx context.Context, masked []byte) (Partition, error)
	// Partitions lists a group's partitions in the order they were opened.
	Partitions(ctx context.Context, groupID []byte) ([]Partition, error)
	// NewestPartition is the tip of the group's main line: from its first
	// partition, at each fork the live partition the first sequenced commit
	// opened (the smallest OpenedBy), to the end. When the first partition is
	// terminated, the most recently opened live partition. ErrUnknownPartition
	// when every partition is terminated.
	NewestPartition(ctx context.Context, groupID []byte) (Partition, error)
	// FindRequest looks up a sequenced request by its hash (unique across
	// the store).
	FindRequest(ctx context.Context, requestHash []byte) (masked []byte, counter uint32, ok bool, err error)
	// Append sequences a message at the end of its partition, opens
	// a.Next and stores a.Welcomes, all in one transaction. A request whose
	// hash was sequenced before returns where it was, with Duplicate set,
	// and writes nothing. It fails with ErrUnknownPartition, ErrTerminated,
	// ErrPartitionFull, ErrPartitionExists (a.Next's key in use) or, for a
	// Checked request, ErrStale.
	Append(ctx context.Context, a AppendRequest, published func(Entry)) (AppendResult, error)
	// Entries returns up to limit entries with counter > after (-1: from the
	// start), in order, stopping after the entry that brings the message
	// bytes to maxBytes (at least one entry is returned if any exists).
	// An unknown partition has no entries.
	Entries(ctx context.Context, masked []byte, after int64, limit, maxBytes int) ([]Entry, error)
	// Handshakes returns the proposals and commits with counter < before.
	Handshakes(ctx context.Context, masked []byte, before int64) ([]Entry, error)
	// HandshakesFrom returns the proposals and commits with counter >= from,
	// in order: what other nodes sequenced since the hub's state.
	HandshakesFrom(ctx context.Context, masked []byte, from int64) ([]Entry, error)
	// Terminate marks the partition terminated; changed is false if it was.
	Terminate(ctx context.Context, masked []byte, at time.Time, published func(Entry)) (changed bool, err error)
	// PendingWelcomes lists up to limit stored Welcomes for provider, oldest first.
	PendingWelcomes(ctx context.Context, provider string, limit int) ([]PendingWelcome, error)
	// Welcome returns the stored Welcome with id (ErrNotFound if unknown).
	Welcome(ctx context.Context, id int64) (PendingWelcome, error)
	// DeleteWelcome removes a delivered Welcome (ErrNotFound if unknown).
	DeleteWelcome(ctx context.Context, id int64) error
}

// WelcomeRouter says which of this provider's clients a KeyPackageRef
// belongs to: the KeyPackage store records it when it serves a KeyPackage.
type WelcomeRouter interface {
	// ServedRef returns what was recorded when this provider served the
	// KeyPackage with this ref; ok is false if it never served it.
	ServedRef(ctx context.Context, ref []byte) (s ServedRef, ok bool, err error)
}

// ServedRef is what the KeyPackage store recorded about a KeyPackage it
// served.
type ServedRef struct {
	ClientID int64 // the client whose KeyPackage it is
	// LeafKeyHash is the SHA-256 of the KeyPackage leaf's signature key; nil
	// when the store did not record it (served before it recorded them).
	LeafKeyHash []byte
}

// Mailbox commits an entry to one client's durable mailbox (and pushes it
// to the client's live sockets).
type Mailbox interface {
	Deliver(ctx context.Context, clientID int64, kind uint16, payload []byte) error
}

// ProviderPolicy is the provider's own policy, which the hub applies besides each
// partition's: provider-wide bans, to every member identity it can see, and the rate
// limit of this provider's senders.
type ProviderPolicy interface {
	// Banned reports whether the provider banned the user URI.
	Banned(ctx context.Context, userURI string) (bool, error)
	// Allow takes one request from the rate limit of key (a local user's URI).
	Allow(key string) bool
}

// noPolicy bans and limits nothing.
type noPolicy struct{}

func (noPolicy) Banned(context.Context, string) (bool, error) { return false, nil }
func (noPolicy) Allow(string) bool                            { return true }

// PushSub is one follower's subscription to a hosted partition (docs/protocol.md
// §5.12), as the hub's provider records it: where the follower's copy stands.
type PushSub struct {
	Peer   string
	Masked []byte
	Next   uint32
	Done   bool
}
