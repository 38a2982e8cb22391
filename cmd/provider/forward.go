package provider

import (
	"context"
	"errors"
	"fmt"

	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/follower"
	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/protocol"
)

// Forwarded group requests (docs/protocol.md §5.10): the follower forwards a local
// client's request for a group hosted elsewhere in a group_request envelope; the
// hub side below answers it from the hub's method table.

// ErrNotForPeer refuses a group_request whose sender is not a user of the sending
// peer's domain: a peer acts only for itself.
var ErrNotForPeer = protocol.NewError(protocol.CodeUnauthorized, "provider: a peer may forward requests of its own users only")

// ErrNotForwardable refuses a group_request naming a method a follower may not
// forward (create_group, or anything else not in protocol.ForwardedMethods).
var ErrNotForwardable = protocol.NewError(protocol.CodeUnknownMethod, "provider: method not forwardable")

// peerLink is the follower's Link: the provider's federation link layer, which
// New makes after the follower (last, as it binds the listener).
type peerLink struct{ p *Provider }

func (l peerLink) Call(ctx context.Context, peer string, typ protocol.EnvelopeType, body []byte) ([]byte, error) {
	if l.p.Federation == nil {
		return nil, follower.ErrUnknownGroup
	}
	return l.p.Federation.Call(ctx, peer, typ, body)
}

// newFollower makes the follower role; it forwards only when federation is
// configured.
func (p *Provider) newFollower() *follower.Follower {
	if !p.Config.Federation.Enabled() {
		return follower.New(follower.Config{Domain: p.Config.Domain})
	}
	return follower.New(follower.Config{Domain: p.Config.Domain, Link: peerLink{p}, Routes: p.DB, Terms: p.newTermsBook(), Own: p.Policy, Logger: p.Log})
}

// registerGroupRequests answers the group_request envelopes of peers from the
// hub's method table.
func (p *Provider) registerGroupRequests() {
	methods := p.Hub.Methods()
	log := p.Log.With("part", "forwarded")
	p.Federation.Handle(protocol.EnvelopeGroupRequest, func(ctx context.Context, in *federation.Inbound) ([]byte, error) {
		var req protocol.GroupRequest
		if err := req.UnmarshalBinary(in.Body); err != nil {
			return nil, fmt.Errorf("provider: group_request: %w", err)
		}
		h := methods[req.Method]
		if h == nil || !protocol.Forwardable(req.Method) {
			log.Warn("peer forwarded a method it may not", "peer", in.Peer, "method", req.Method.String())
			return nil, fmt.Errorf("%w: %s", ErrNotForwardable, req.Method)
		}
		if !userOfPeer(req.UserURI, in.Peer) {
			log.Warn("peer forwarded a request for a user of another domain; refused", "peer", in.Peer,
				"user", req.UserURI, "method", req.Method.String())
			return nil, fmt.Errorf("%w: %q from %s", ErrNotForPeer, req.UserURI, in.Peer)
		}
		out, err := h(ctx, protocol.Sender{UserURI: req.UserURI, Peer: in.Peer}, req.Body)
		if errors.Is(err, hub.ErrForeignIdentity) || errors.Is(err, hub.ErrIdentityMismatch) {
			log.Warn("peer forwarded a credential that does not name its sender; refused", "peer", in.Peer,
				"user", req.UserURI, "method", req.Method.String(), "err", err)
		}
		return out, err
	})
}

// userOfPeer reports whether uri is a user URI (no client part) of domain peer.
func userOfPeer(uri, peer string) bool {
	domain, user, client, err := protocol.ParseURI(uri)
	return err == nil && user != "" && client == "" && domain == peer
}
