package provider

import (
	"context"
	"errors"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
)

// HubRouter answers the hub's Welcome routing question from the KeyPackage store.
type HubRouter struct{ kp *directory.KeyPackages }

func (r HubRouter) ClientForRef(ctx context.Context, ref []byte) (int64, bool, error) {
	c, err := r.kp.ClientForRef(ctx, ref)
	if errors.Is(err, directory.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return c.ID, true, nil
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
