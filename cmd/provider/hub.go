package provider

import (
	"context"
	"errors"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/hub"
)

// HubRouter answers the hub's Welcome routing question from the KeyPackage store.
type HubRouter struct{ kp *directory.KeyPackages }

func (r HubRouter) ServedRef(ctx context.Context, ref []byte) (hub.ServedRef, bool, error) {
	s, err := r.kp.ServedKeyPackage(ctx, ref)
	if errors.Is(err, directory.ErrNotFound) {
		return hub.ServedRef{}, false, nil
	}
	if err != nil {
		return hub.ServedRef{}, false, err
	}
	return hub.ServedRef{ClientID: s.Client.ID, LeafKeyHash: s.LeafKeyHash}, true, nil
}

// HubMailbox delivers Welcomes to local clients' durable mailboxes.
type HubMailbox struct{ mb *mailbox.Mailbox }

func (m HubMailbox) Deliver(ctx context.Context, clientID int64, kind uint16, payload []byte) error {
	// Zero entries means the client is revoked or gone: nothing to retry.
	_, err := m.mb.Enqueue(ctx, mailbox.Target{ClientID: clientID}, kind, payload)
	return err
}

// Room implements hub.MailboxRoom: the hub refuses a Welcome the client's mailbox
// cannot take before it stores or sequences anything.
func (m HubMailbox) Room(ctx context.Context, clientID int64, kind uint16, size int) error {
	return m.mb.Room(ctx, clientID, kind, size)
}

// ChangePartitions tells a running server that the admin CLI changed partitions
// (termination): subscribers refetch.
const ChangePartitions = "partitions"
