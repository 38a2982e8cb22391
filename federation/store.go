package federation

import (
	"context"
	"time"

	"github.com/mimids/mimids/protocol"
)

// Errors of the peer registry and the queues. They carry wire codes for the admin
// edges that report them.
var (
	// ErrUnknownPeer reports a domain that is not on the allow-list.
	ErrUnknownPeer = protocol.NewError(protocol.CodeNotFound, "federation: unknown peer")
	// ErrBadPeer reports an allow-list entry that cannot be used (domain, URL, trust).
	ErrBadPeer = protocol.NewError(protocol.CodeInvalid, "federation: bad peer")
	// ErrTooLarge reports an envelope body over protocol.MaxEnvelopeBody.
	ErrTooLarge = protocol.NewError(protocol.CodeTooLarge, "federation: envelope too large")
)

// Peer is one provider on the allow-list: its domain, where to dial it, and what
// proves that a certificate is its: a CA bundle, or the SHA-256 of its certificate.
type Peer struct {
	Domain string
	URL    string // wss://host:port, the peer's federation listener
	CA     []byte // PEM certificates; nil when pinned
	Pin    []byte // SHA-256 of the peer's certificate (DER), 32 bytes; nil with a CA
	// Stream names our outbound stream toward the peer (docs/protocol.md §5.1). It is
	// made when the peer is first added and kept when its entry is replaced.
	Stream  uint64
	AddedAt time.Time
}

// LinkState is a link's state as the running server records it.
type LinkState string

const (
	StateUp      LinkState = "up"      // a link is established
	StateAway    LinkState = "away"    // no link: dialling with backoff, or waiting for the peer
	StateStopped LinkState = "stopped" // the server stopped
)

// PeerStatus is what the running server last recorded about its link with a peer,
// for `mimids peer list`.
type PeerStatus struct {
	Domain string
	State  LinkState
	// Dialer is the domain that dialled the link that is up ("" when none is).
	Dialer      string
	Since       time.Time // when State began
	LastError   string
	LastErrorAt time.Time
	Attempts    int       // dials that failed since the link was last up
	UpdatedAt   time.Time // when this was recorded
}

// PeerStore is the allow-list and the links' recorded states.
type PeerStore interface {
	// PutPeer adds p, or replaces the URL and trust of the peer with its domain,
	// keeping its stream and queues. p.Stream is used only when the peer is new.
	PutPeer(ctx context.Context, p Peer) error
	// Peer returns the peer with domain, or ErrUnknownPeer.
	Peer(ctx context.Context, domain string) (Peer, error)
	// Peers returns the allow-list, ordered by domain.
	Peers(ctx context.Context) ([]Peer, error)
	// RemovePeer removes a peer with its outbound queue, its dedup records and its
	// status; it reports whether the peer existed.
	RemovePeer(ctx context.Context, domain string) (bool, error)
	// SetPeerStatus records a link's state (of a peer on the allow-list; others are
	// ignored).
	SetPeerStatus(ctx context.Context, s PeerStatus) error
	// PeerStatuses returns every recorded state, ordered by domain.
	PeerStatuses(ctx context.Context) ([]PeerStatus, error)
}

// Queued is an envelope in a peer's outbound queue, waiting for its answer.
type Queued struct {
	ID         uint64
	Type       protocol.EnvelopeType
	Body       []byte
	EnqueuedAt time.Time
}

// QueueStats summarizes one peer's outbound queue.
type QueueStats struct {
	Peer   string
	Depth  int       // envelopes waiting for their answer
	Bytes  int64     // their bodies
	Oldest time.Time // enqueue time of the oldest (zero when empty)
}

// QueueStore keeps each peer's outbound envelopes (the source of truth: the link
// holds only a window of them in memory) until the peer answers them.
type QueueStore interface {
	// Enqueue appends an envelope to peer's queue with the next id of the peer's
	// stream (1, 2, 3...: ids are never reused, and commit order is id order) and
	// returns the id. committed, if set, runs right after the commit, before any
	// later write commits. If ctx carries a store transaction (Inbound handlers run
	// with such a context, see Links.HandleAtomic), the envelope joins it:
	// committed runs once that transaction commits. ErrUnknownPeer if peer is not on
	// the allow-list.
	Enqueue(ctx context.Context, peer string, typ protocol.EnvelopeType, body []byte, at time.Time, committed func(id uint64)) (uint64, error)
	// Pending returns peer's queued envelopes with ids above after, in id order: at
	// most limit, and no more once their bodies reach maxBytes (but at least one).
	Pending(ctx context.Context, peer string, after uint64, limit, maxBytes int) ([]Queued, error)
	// Acked removes answered envelopes from peer's queue and returns the ids it
	// removed, in id order (an id answered twice, on two links, is removed once).
	// fn, if set, runs in the same transaction with those ids and a context that
	// other writes of the store join; an error from fn undoes the removal and is
	// returned.
	Acked(ctx context.Context, peer string, ids []uint64, fn func(ctx context.Context, removed []uint64) error) ([]uint64, error)
	// QueueStats summarizes every peer's queue that is not empty.
	QueueStats(ctx context.Context) ([]QueueStats, error)
}

// Reply is what a receiver answered to an envelope, as the dedup records keep it.
type Reply struct {
	// Code is 0 for an ack, or the code of an error envelope.
	Code protocol.Code
	// Body is the ack's body, or the error's message.
	Body []byte
}

// DedupStore keeps, per peer, the stream being received, the highest envelope id
// applied and the replies to at least the protocol.DedupRetention most recent ids,
// so that a retried envelope is answered as the first time and applied once.
type DedupStore interface {
	// InboxState returns the peer's stream and the highest id applied on it (0, 0
	// for a peer never heard from).
	InboxState(ctx context.Context, peer string) (stream, highest uint64, err error)
	// ResetInbox starts stream for peer: it forgets the replies of the previous one.
	ResetInbox(ctx context.Context, peer string, stream uint64) error
	// Reply returns the reply recorded for (peer, id).
	Reply(ctx context.Context, peer string, id uint64) (Reply, bool, error)
	// Record applies envelope id of peer once. If a reply is recorded already, it
	// returns it without calling fn. Otherwise it calls fn inside a transaction,
	// with a context that other writes of the store join, and records the reply in
	// the same transaction, raising the peer's highest id:
	//   - fn returns a body: its writes and the ack commit together;
	//   - fn returns an error with a wire code other than internal (protocol.CodeOf):
	//     its writes are undone, and the error reply is recorded;
	//   - fn returns any other error: nothing commits, and Record returns it.
	// Replies more than protocol.DedupRetention ids below the highest may be
	// dropped.
	Record(ctx context.Context, peer string, id uint64, fn func(ctx context.Context) ([]byte, error)) (Reply, error)
}

// Store is everything the link layer keeps.
type Store interface {
	PeerStore
	QueueStore
	DedupStore
}
