package hub

// Bus carries what this hub commits to the other nodes of its provider (package
// natsbus), and learns which partitions this node's sinks follow. Without one
// (Config.Bus nil) the hub's own sinks are the whole fan-out, as on a single node.
// The store stays the source of truth: a Bus may lose notifications, and the node
// that missed some makes its sinks refetch (Poke); Deliver offers what it received.
type Bus interface {
	// PartitionCommitted is called with every entry this node committed (sequenced
	// messages and terminated events), after the commit, in commit order per
	// partition, on the store's writer: it must not block, and must not keep e's
	// slices past its return.
	PartitionCommitted(e Entry)
	// WatchPartition says this node has sinks for the partition (by masked key)
	// from now until cancel is called. Neither it nor cancel may block.
	WatchPartition(masked []byte) (cancel func())
}

// Deliver offers an entry another node committed to this node's sinks of its
// partition. Sinks drop what they already have and refetch on a gap, so entries
// that come twice, late or out of order are harmless.
func (h *Hub) Deliver(e Entry) { h.fanout(e) }
