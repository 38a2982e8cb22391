package hub

import (
	"context"
	"crypto/sha256"
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
// Welcome's KeyPackageRefs. created, at create_group, is the new group's
// tree: each ref of this provider must then be one it served, whose leaf is
// in that tree.
func (h *Hub) planWelcomes(ctx context.Context, groupID []byte, suite *mls.Suite, wd *protocol.WelcomeData, res *mls.CommitResult, created *mls.Tree) ([]PendingWelcome, error) {
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
	return h.routeWelcome(ctx, groupID, wd, refs, created)
}

// routeWelcome groups the Welcome's refs by destination. With created (at
// create_group), a ref of this provider it never served, or whose leaf is
// not in created, is refused; otherwise such refs are dropped and logged.
func (h *Hub) routeWelcome(ctx context.Context, groupID []byte, wd *protocol.WelcomeData, refs [][]byte, created *mls.Tree) ([]PendingWelcome, error) {
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
	var leaves map[string]bool // created's leaf key hashes, when needed
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
		served, ok, err := h.router.ServedRef(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("hub: route Welcome: %w", err)
		}
		if !ok && created != nil {
			return nil, fmt.Errorf("%w: secret %d names KeyPackage %x, which this provider never served", ErrWelcomeMismatch, i, ref)
		}
		if !ok {
			unserved = append(unserved, ref)
			continue
		}
		if created != nil && served.LeafKeyHash != nil {
			if leaves == nil {
				leaves = leafKeyHashes(created)
			}
			if !leaves[string(served.LeafKeyHash)] {
				return nil, fmt.Errorf("%w: secret %d names KeyPackage %x, whose leaf is not in the group's tree", ErrWelcomeMismatch, i, ref)
			}
		}
		client := served.ClientID
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

// leafKeyHashes returns the SHA-256 of every leaf's signature key in t.
func leafKeyHashes(t *mls.Tree) map[string]bool {
	out := make(map[string]bool, t.LeafCount())
	for i := range t.LeafCount() {
		if ln := t.Leaf(i); ln != nil {
			sum := sha256.Sum256(ln.SignatureKey)
			out[string(sum[:])] = true
		}
	}
	return out
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

// RemoteWelcome returns the stored Welcome with id, waiting for the provider
// that WelcomeData named for its refs; ErrNotFound if it is not stored or is for
// a local client.
func (h *Hub) RemoteWelcome(ctx context.Context, id int64) (PendingWelcome, error) {
	w, err := h.store.Welcome(ctx, id)
	if err != nil {
		return PendingWelcome{}, err
	}
	if w.ClientID != 0 || w.Provider == h.cfg.Domain {
		return PendingWelcome{}, fmt.Errorf("%w: Welcome %d is for a local client", ErrNotFound, id)
	}
	return w, nil
}

// WelcomeDelivered removes a Welcome the provider accepted (or refused for
// good); ErrNotFound if it is not stored.
func (h *Hub) WelcomeDelivered(ctx context.Context, id int64) error {
	return h.store.DeleteWelcome(ctx, id)
}
