package federation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Lease is the right of one node of a provider (scale-out: several nodes on one
// store) to run the link to one peer. At most one node holds a peer's lease at a
// time; it lasts until Expires unless its owner renews it, and then another node
// takes it over.
type Lease struct {
	Peer    string
	Owner   string // the node's id (cluster.node_id)
	Expires time.Time
	// Epoch increases each time the lease changes owner: a fencing token that a
	// store write made for the link may carry, so a node that lost the lease
	// cannot overwrite its successor's work.
	Epoch uint64
}

// LeaseStore keeps the peer links' leases in the store that the nodes share.
type LeaseStore interface {
	// AcquireLease gives node the lease of peer until now+ttl if it is free,
	// expired (Expires <= now) or already node's, in one transaction, and returns
	// the lease as it stands afterwards: held by node, or still by another.
	AcquireLease(ctx context.Context, peer, node string, now time.Time, ttl time.Duration) (Lease, error)
	// ReleaseLease ends node's lease of peer at once (a node that stops), if node
	// holds it; the next node to ask takes it.
	ReleaseLease(ctx context.Context, peer, node string) error
	// Leases returns every lease, ordered by peer.
	Leases(ctx context.Context) ([]Lease, error)
}

// LeaserConfig configures a Leaser.
type LeaserConfig struct {
	Node string        // this node's id; required
	TTL  time.Duration // how long a lease lasts unrenewed (default 15 s); renewed every TTL/3
	// Peers lists the peers whose links need an owner (the allow-list).
	Peers func(ctx context.Context) ([]string, error)
	// OnChange, if set, is called (from Run) when this node gains or loses a
	// peer's lease: start or stop that peer's link.
	OnChange func(peer string, held bool)
	Now      func() time.Time // default time.Now
	Logger   *slog.Logger
}

// Leaser keeps this node's leases: every TTL/3 it asks for the lease of each peer
// on the allow-list, so a node that dies loses its leases within TTL and the
// others take them over.
type Leaser struct {
	// Static after NewLeaser.
	cfg   LeaserConfig
	store LeaseStore

	mu   sync.Mutex
	held map[string]Lease // Guarded by mu.
	seen map[string]Lease // the last lease read of each peer, whoever holds it; Guarded by mu.
}

// NewLeaser returns a Leaser of node over store.
func NewLeaser(cfg LeaserConfig, store LeaseStore) (*Leaser, error) {
	if cfg.Node == "" || cfg.Peers == nil || store == nil {
		return nil, errors.New("federation: leaser: node, peers and store are required")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 15 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Leaser{cfg: cfg, store: store, held: make(map[string]Lease), seen: make(map[string]Lease)}, nil
}

// Holds reports whether this node holds peer's lease with a third of its term
// left by its own clock: a node whose renewals fail stops running the link before
// another node can take it.
func (l *Leaser) Holds(peer string) bool {
	l.mu.Lock()
	ls, ok := l.held[peer]
	l.mu.Unlock()
	return ok && l.cfg.Now().Before(ls.Expires.Add(-l.cfg.TTL/3))
}

// Owner returns the node that held peer's lease when this node last asked for it,
// if that lease has not expired by this node's clock: the node to forward a Call
// to (Config.ForwardCall).
func (l *Leaser) Owner(peer string) (string, bool) {
	l.mu.Lock()
	ls, ok := l.seen[peer]
	l.mu.Unlock()
	if !ok || !l.cfg.Now().Before(ls.Expires) {
		return "", false
	}
	return ls.Owner, true
}

// Node is this node's id.
func (l *Leaser) Node() string { return l.cfg.Node }

// Held returns the leases this node holds, by peer.
func (l *Leaser) Held() map[string]Lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]Lease, len(l.held))
	for p, ls := range l.held {
		out[p] = ls
	}
	return out
}

// Run renews and takes leases until ctx ends, then releases the ones it holds.
func (l *Leaser) Run(ctx context.Context) error {
	t := time.NewTicker(l.cfg.TTL / 3)
	defer t.Stop()
	for {
		if err := l.Renew(ctx); err != nil && ctx.Err() == nil {
			l.cfg.Logger.Warn("federation: renew leases", "err", err)
		}
		select {
		case <-ctx.Done():
			l.releaseAll()
			return nil
		case <-t.C:
		}
	}
}

// Renew asks once for the lease of every peer on the allow-list.
func (l *Leaser) Renew(ctx context.Context) error {
	peers, err := l.cfg.Peers(ctx)
	if err != nil {
		return fmt.Errorf("federation: leases: peers: %w", err)
	}
	want := make(map[string]bool, len(peers))
	var errs []error
	for _, p := range peers {
		want[p] = true
		ls, err := l.store.AcquireLease(ctx, p, l.cfg.Node, l.cfg.Now(), l.cfg.TTL)
		if err != nil {
			errs = append(errs, fmt.Errorf("federation: lease %s: %w", p, err))
			if !l.Holds(p) {
				l.set(p, Lease{}, false) // past its safe term: stop the link
			}
			continue
		}
		l.mu.Lock()
		l.seen[p] = ls
		l.mu.Unlock()
		l.set(p, ls, ls.Owner == l.cfg.Node)
	}
	l.mu.Lock()
	var gone []string
	for p := range l.held {
		if !want[p] {
			gone = append(gone, p)
		}
	}
	l.mu.Unlock()
	l.mu.Lock()
	for p := range l.seen {
		if !want[p] {
			delete(l.seen, p)
		}
	}
	l.mu.Unlock()
	for _, p := range gone {
		l.set(p, Lease{}, false)
		if err := l.store.ReleaseLease(ctx, p, l.cfg.Node); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// set records whether this node holds peer's lease and reports a change.
func (l *Leaser) set(peer string, ls Lease, held bool) {
	l.mu.Lock()
	_, had := l.held[peer]
	if held {
		l.held[peer] = ls
	} else {
		delete(l.held, peer)
	}
	l.mu.Unlock()
	if had != held {
		l.cfg.Logger.Info("federation: link lease", "peer", peer, "held", held, "owner", ls.Owner, "epoch", ls.Epoch)
		if l.cfg.OnChange != nil {
			l.cfg.OnChange(peer, held)
		}
	}
}

func (l *Leaser) releaseAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for p := range l.Held() {
		l.mu.Lock()
		delete(l.seen, p)
		l.mu.Unlock()
		l.set(p, Lease{}, false)
		if err := l.store.ReleaseLease(ctx, p, l.cfg.Node); err != nil {
			l.cfg.Logger.Warn("federation: release lease", "peer", p, "err", err)
		}
	}
}
