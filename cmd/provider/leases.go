package provider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/natsbus"
	"github.com/mimids/mimids/protocol"
)

// Federation on a provider of several nodes (docs/scale-out.md "Federation link
// leases"): one node at a time runs a peer's link, the holder of the peer's lease
// (federation.Leaser); the others tell it over NATS when they queue an envelope
// for the peer (natsbus PeerQueued), forward their Calls to it (natsbus Call,
// answered with Links.CallHere), and run no Welcome sender or pusher for the peer.

// forwardRetry is the pause before a forwarded Call asks again, when no node ran
// the peer's link (a lease changing owner).
const forwardRetry = 100 * time.Millisecond

// nodeID is this node's id (cluster.node_id, by default the host name).
func nodeID(cfg Config) string {
	if cfg.Cluster.NodeID != "" {
		return cfg.Cluster.NodeID
	}
	node, _ := os.Hostname()
	return node
}

// newLeaser makes the node's Leaser; the link layer, pushers and Welcome sender
// consult it (Provider.owns).
func (p *Provider) newLeaser() (*federation.Leaser, error) {
	return federation.NewLeaser(federation.LeaserConfig{Node: nodeID(p.Config), TTL: p.Config.Cluster.LeaseTTL.D(),
		Logger: p.Log,
		Peers: func(ctx context.Context) ([]string, error) {
			peers, err := p.DB.Peers(ctx)
			if err != nil {
				return nil, err
			}
			out := make([]string, len(peers))
			for i, peer := range peers {
				out[i] = peer.Domain
			}
			return out, nil
		},
		OnChange: p.leaseChanged}, p.DB)
}

// owns reports whether this node runs the link with peer: always on a single node.
func (p *Provider) owns(peer string) bool { return p.Leaser == nil || p.Leaser.Holds(peer) }

// leaseChanged starts or stops what runs only on the owner of peer's link.
func (p *Provider) leaseChanged(peer string, held bool) {
	if p.Federation == nil {
		return
	}
	if !held {
		p.Federation.Handover(peer)
		p.pushers.stopPeer(peer)
		return
	}
	p.Federation.Wake(peer)
	p.pushers.startPeer(peer) // the Welcome sender looks at its next pass
}

// forwardCall runs a Call made on a node that does not run peer's link: on the
// lease's owner, asked over NATS. It asks again while no node runs the link (the
// lease is changing owner), until ctx ends; an owner that got the Call answers it
// or fails it, and it is not asked twice.
func (p *Provider) forwardCall(ctx context.Context, peer string, typ protocol.EnvelopeType, body []byte) ([]byte, error) {
	for {
		owner, ok := p.Leaser.Owner(peer)
		switch {
		case ok && owner == p.Leaser.Node() && p.Leaser.Holds(peer):
			return p.Federation.CallHere(ctx, peer, typ, body)
		case ok && owner != p.Leaser.Node():
			out, err := p.Bus.Call(ctx, owner, peer, typ, body)
			if !errors.Is(err, natsbus.ErrNotOwner) && !errors.Is(err, natsbus.ErrNoNode) {
				return out, err
			}
		}
		t := time.NewTimer(forwardRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("provider: call %s: no node runs the link: %w", peer, ctx.Err())
		case <-t.C:
		}
	}
}

// serveCall runs a Call another node forwarded to this one.
func (p *Provider) serveCall(ctx context.Context, peer string, typ protocol.EnvelopeType, body []byte) ([]byte, error) {
	if !p.Leaser.Holds(peer) {
		return nil, natsbus.ErrNotOwner
	}
	return p.Federation.CallHere(ctx, peer, typ, body)
}
