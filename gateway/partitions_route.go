package gateway

import (
	"context"

	"github.com/mimids/mimids/protocol"
)

// Followed is a Partitions over partitions hosted elsewhere that Follows names.
type Followed interface {
	Partitions
	// Follows reports whether masked is one of its partitions.
	Follows(masked []byte) bool
}

// RoutedPartitions serves hosted partitions from Hosted and the others, that this
// provider follows at their hubs, from Remote (docs/protocol.md §5.12).
type RoutedPartitions struct {
	Hosted Partitions
	Remote Followed // nil: hosted partitions only
}

func (p RoutedPartitions) pick(masked []byte) Partitions {
	if p.Remote != nil && p.Remote.Follows(masked) {
		return p.Remote
	}
	return p.Hosted
}

// Subscribe registers s with whichever serves masked.
func (p RoutedPartitions) Subscribe(masked []byte, s PartitionSink) (cancel func()) {
	return p.pick(masked).Subscribe(masked, s)
}

// Fetch reads whichever serves masked.
func (p RoutedPartitions) Fetch(ctx context.Context, masked []byte, after int64, limit int) ([]PartitionEntry, error) {
	return p.pick(masked).Fetch(ctx, masked, after, limit)
}

// Masked asks Hosted, then, for a partition it does not host (not_found), Remote.
func (p RoutedPartitions) Masked(ctx context.Context, partitionKey []byte) ([]byte, error) {
	m, err := p.Hosted.Masked(ctx, partitionKey)
	if code, _ := protocol.CodeOf(err); err == nil || p.Remote == nil || code != protocol.CodeNotFound {
		return m, err
	}
	return p.Remote.Masked(ctx, partitionKey)
}

// MaskedAt is Masked with the partition's hub named: Hosted first, then Remote at
// hub (a known route wins over the hint). Without a Remote that takes hints, the
// hint is ignored.
func (p RoutedPartitions) MaskedAt(ctx context.Context, hub string, partitionKey []byte) ([]byte, error) {
	m, err := p.Hosted.Masked(ctx, partitionKey)
	hinted, ok := p.Remote.(HintedPartitions)
	if code, _ := protocol.CodeOf(err); err == nil || !ok || code != protocol.CodeNotFound {
		return m, err
	}
	return hinted.MaskedAt(ctx, hub, partitionKey)
}
