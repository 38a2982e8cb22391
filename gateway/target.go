package gateway

import (
	"context"
	"fmt"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/protocol"
)

// ResolveTarget turns a client URI, a user URI or "all" (exactly one) into a mailbox
// target. URIs must name this provider.
func ResolveTarget(ctx context.Context, d Directory, clientURI, userURI string, all bool) (mailbox.Target, error) {
	n := 0
	for _, set := range []bool{clientURI != "", userURI != "", all} {
		if set {
			n++
		}
	}
	if n != 1 {
		return mailbox.Target{}, mailbox.ErrTarget
	}
	if all {
		return mailbox.Target{All: true}, nil
	}
	uri := clientURI + userURI
	domain, user, client, err := protocol.ParseURI(uri)
	if err != nil {
		return mailbox.Target{}, err
	}
	if domain != d.Domain() {
		return mailbox.Target{}, fmt.Errorf("%w: %q is not a user of %s", directory.ErrNotFound, uri, d.Domain())
	}
	if (clientURI != "") != (client != "") {
		return mailbox.Target{}, fmt.Errorf("%w: %q", protocol.ErrBadURI, uri)
	}
	if client == "" {
		u, err := d.User(ctx, user)
		if err != nil {
			return mailbox.Target{}, err
		}
		return mailbox.Target{UserID: u.ID}, nil
	}
	cs, err := d.ListClients(ctx, user)
	if err != nil {
		return mailbox.Target{}, err
	}
	for _, c := range cs {
		if c.Name == client {
			return mailbox.Target{ClientID: c.ID}, nil
		}
	}
	return mailbox.Target{}, fmt.Errorf("%w: client %q", directory.ErrNotFound, uri)
}
