package hub

import (
	"context"
	"sort"
)

// PartitionView is what the hub can see of a partition's group state, for the
// admin dashboard: its members and its moderation list (the 0xF0A0 extension).
type PartitionView struct {
	Visible bool     // false: the hub has no public state (PrivateMessage handshakes)
	Epoch   uint64   // the partition's epoch
	Members []string // the basic credentials' identities, by leaf index
	Banned  []string // user URIs, sorted
	Muted   []string // user URIs, sorted
}

// View returns what the hub sees of a partition; it loads (and may rebuild) the
// partition's public state, as a send would.
func (h *Hub) View(ctx context.Context, masked []byte) (PartitionView, error) {
	ps, err := h.state(ctx, masked)
	if err != nil {
		return PartitionView{}, err
	}
	defer h.states.release(ps)
	v := PartitionView{Epoch: ps.epoch}
	if ps.pol != nil {
		for u := range ps.pol.banned {
			v.Banned = append(v.Banned, u)
		}
		for u := range ps.pol.muted {
			v.Muted = append(v.Muted, u)
		}
		sort.Strings(v.Banned)
		sort.Strings(v.Muted)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.view == nil {
		return v, nil
	}
	v.Visible = true
	for _, m := range ps.view.Members() {
		v.Members = append(v.Members, string(m.Identity))
	}
	return v, nil
}
