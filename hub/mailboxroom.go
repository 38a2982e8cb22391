package hub

import (
	"context"
	"fmt"

	"github.com/mimids/mimids/protocol"
)

// MailboxRoom is implemented by a Mailbox that bounds its clients' mailboxes. Before
// the hub stores a group or sequences a commit whose Welcome goes to clients of this
// provider, it asks whether each delivery fits: if one does not, the request is
// refused with the mailbox's error (mailbox_full, or too_large over the largest
// payload) and nothing is stored or sequenced, so the producer knows its Welcome was
// not delivered. A mailbox that fills between the question and the delivery (another
// producer won the race) refuses the delivery itself; that Welcome stays stored and is
// retried (RedeliverWelcomes) until it fits.
type MailboxRoom interface {
	Room(ctx context.Context, clientID int64, kind uint16, size int) error
}

// checkRoom asks the mailbox whether every local Welcome of ws fits.
func (h *Hub) checkRoom(ctx context.Context, ws []PendingWelcome) error {
	r, ok := h.mailbox.(MailboxRoom)
	if !ok {
		return nil
	}
	for _, w := range ws {
		if w.Provider != h.cfg.Domain || w.ClientID == 0 {
			continue
		}
		d := protocol.WelcomeDelivery{GroupID: w.GroupID, KeyPackageRefs: w.KeyPackageRefs, Welcome: w.Welcome}
		payload, err := d.MarshalBinary()
		if err != nil {
			return err
		}
		if err := r.Room(ctx, w.ClientID, uint16(protocol.KindWelcome), len(payload)); err != nil {
			return fmt.Errorf("hub: Welcome for client %d: %w", w.ClientID, err)
		}
	}
	return nil
}

// mailboxFull reports a delivery the recipient's mailbox refused for its quota: the
// Welcome stays stored for a later retry, and the others are tried meanwhile.
func mailboxFull(err error) bool {
	code, ok := protocol.CodeOf(err)
	return ok && code == protocol.CodeMailboxFull
}
