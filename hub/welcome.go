package hub

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// planWelcomes checks WelcomeData and splits the Welcome into deliveries:
// one per local client (refs whose provider is this one and that the
// KeyPackage store says it served to that client) and one per other
// provider. res, when the hub verified the commit, must add exactly the
// Welcome's KeyPackageRefs.
func (h *Hub) planWelcomes(ctx context.Context, groupID []byte, suite *mls.Suite, wd *protocol.WelcomeData, res *mls.CommitResult) ([]PendingWelcome, error) {
	if wd == nil {
		return nil, nil
	}
	m, err := wd.ParsedWelcome()
	if err != nil {
		return nil, err
	}
	if m.Welcome == nil {
		return nil, fmt.Errorf("%w: welcome is a %s", ErrMalformed, m.WireFormat)
	}
	if m.Welcome.CipherSuite != suite.ID() {
		return nil, fmt.Errorf("%w: Welcome for suite %s in a %s group", ErrWelcomeMismatch, m.Welcome.CipherSuite, suite.ID())
	}
	refs := m.Welcome.KeyPackageRefs()
	if len(refs) == 0 || len(refs) != len(wd.ServiceProviders) {
		return nil, fmt.Errorf("%w: %d secrets, %d service_providers", ErrWelcomeMismatch, len(refs), len(wd.ServiceProviders))
	}
	seen := make(map[string]bool, len(refs))
	for i, ref := range refs {
		if seen[string(ref)] || wd.ServiceProviders[i] == "" {
			return nil, fmt.Errorf("%w: secret %d repeats a KeyPackageRef or has no provider", ErrWelcomeMismatch, i)
		}
		seen[string(ref)] = true
	}
	if res != nil {
		n := 0
		for _, a := range res.Added {
			if a.KeyPackageRef == nil {
				continue // an external joiner
			}
			n++
			if !seen[string(a.KeyPackageRef)] {
				return nil, fmt.Errorf("%w: the commit adds %x, which the Welcome does not name", ErrWelcomeMismatch, a.KeyPackageRef)
			}
		}
		if n != len(refs) {
			return nil, fmt.Errorf("%w: the Welcome names %d new members, the commit adds %d", ErrWelcomeMismatch, len(refs), n)
		}
	}
	return h.routeWelcome(ctx, groupID, wd, refs)
}

// routeWelcome groups the Welcome's refs by destination.
func (h *Hub) routeWelcome(ctx context.Context, groupID []byte, wd *protocol.WelcomeData, refs [][]byte) ([]PendingWelcome, error) {
	welcome := cloneBytes(wd.Welcome)
	gid := cloneBytes(groupID)
	var out []PendingWelcome
	local := map[int64]int{}   // client -> index in out
	remote := map[string]int{} // provider -> index in out
	var unserved [][]byte      // local refs no client was served: logged once, with the count
	defer func() {
		if len(unserved) > 0 {
			h.log.Warn("hub: Welcome names KeyPackages this provider never served", "group_id", fmt.Sprintf("%x", groupID),
				"refs", len(unserved), "of", len(refs), "first_ref", fmt.Sprintf("%x", unserved[0]))
		}
	}()
	for i, ref := range refs {
		p := wd.ServiceProviders[i]
		if p != h.cfg.Domain {
			j, ok := remote[p]
			if !ok {
				j = len(out)
				remote[p] = j
				out = append(out, PendingWelcome{GroupID: gid, Provider: p, Welcome: welcome})
			}
			out[j].KeyPackageRefs = append(out[j].KeyPackageRefs, cloneBytes(ref))
			continue
		}
		client, ok, err := h.router.ClientForRef(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("hub: route Welcome: %w", err)
		}
		if !ok {
			unserved = append(unserved, ref)
			continue
		}
		j, seen := local[client]
		if !seen {
			j = len(out)
			local[client] = j
			out = append(out, PendingWelcome{GroupID: gid, Provider: h.cfg.Domain, ClientID: client, Welcome: welcome})
		}
		out[j].KeyPackageRefs = append(out[j].KeyPackageRefs, cloneBytes(ref))
	}
	return out, nil
}

// deliverLocal puts the stored Welcomes of local clients into their
// mailboxes and deletes them from the store. A failure leaves the Welcome
// stored for RedeliverWelcomes; failures are logged once per call, with the
// count and the first error.
func (h *Hub) deliverLocal(ctx context.Context, ws []PendingWelcome, ids []int64) {
	failed, local := 0, 0
	var first error
	defer func() {
		if failed > 0 {
			h.log.Warn("hub: Welcome delivery failed; will retry", "group_id", fmt.Sprintf("%x", ws[0].GroupID),
				"clients", failed, "of", local, "err", first)
		}
	}()
	for i := range ws {
		if i >= len(ids) {
			return
		}
		if ws[i].Provider != h.cfg.Domain || ws[i].ClientID == 0 {
			h.metrics.welcomesRemote.Add(1)
			continue
		}
		ws[i].ID = ids[i]
		local++
		if err := h.deliverOne(ctx, ws[i]); err != nil {
			if failed++; first == nil {
				first = fmt.Errorf("client %d: %w", ws[i].ClientID, err)
			}
		}
	}
}

func (h *Hub) deliverOne(ctx context.Context, w PendingWelcome) error {
	d := protocol.WelcomeDelivery{GroupID: w.GroupID, KeyPackageRefs: w.KeyPackageRefs, Welcome: w.Welcome}
	payload, err := d.MarshalBinary()
	if err != nil {
		return err
	}
	if err := h.mailbox.Deliver(ctx, w.ClientID, uint16(protocol.KindWelcome), payload); err != nil {
		return err
	}
	h.metrics.welcomesLocal.Add(1)
	return h.store.DeleteWelcome(ctx, w.ID)
}

// welcomeGrace keeps RedeliverWelcomes off Welcomes that a Send is
// delivering right now.
const welcomeGrace = 10 * time.Second

// RedeliverWelcomes delivers the stored Welcomes of local clients older than
// a few seconds: those whose delivery failed, or was cut by a crash between
// sequencing and delivery. Delivery is at least once: a crash between the
// mailbox write and the deletion delivers a Welcome twice.
func (h *Hub) RedeliverWelcomes(ctx context.Context) error {
	const page = 100
	cutoff := h.cfg.Now().Add(-welcomeGrace)
	ws, err := h.store.PendingWelcomes(ctx, h.cfg.Domain, page)
	if err != nil {
		return fmt.Errorf("hub: pending Welcomes: %w", err)
	}
	for _, w := range ws {
		if w.ClientID == 0 || w.CreatedAt.After(cutoff) {
			continue
		}
		if err := h.deliverOne(ctx, w); mailboxFull(err) {
			continue
		} else if err != nil {
			return fmt.Errorf("hub: redeliver Welcome %d: %w", w.ID, err)
		}
	}
	return nil
}

// PendingWelcomes lists up to limit Welcomes waiting for another provider,
// oldest first, for the federation's WelcomeInitRequest and push.
func (h *Hub) PendingWelcomes(ctx context.Context, provider string, limit int) ([]PendingWelcome, error) {
	if provider == h.cfg.Domain {
		return nil, fmt.Errorf("%w: %s is this provider", ErrMalformed, provider)
	}
	ws, err := h.store.PendingWelcomes(ctx, provider, limit)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(ws, func(w PendingWelcome) bool { return w.ClientID != 0 }), nil
}

// WelcomeDelivered removes a Welcome the provider accepted (or refused for
// good); ErrNotFound if it is not stored.
func (h *Hub) WelcomeDelivered(ctx context.Context, id int64) error {
	return h.store.DeleteWelcome(ctx, id)
}
