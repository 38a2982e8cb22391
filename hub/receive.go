package hub

import (
	"context"
	"fmt"

	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// Receive answers a ReceiveRequest: the partition's messages from counter
// on (at most ReceiveMaxMessages, and ReceiveMaxBytes of messages), and as
// hints, for each of the first HintPartitions commits among them, the first
// HintMessages messages of the partition that commit opened, within what is
// left of the byte budget. Hinted partitions without messages are left out.
func (h *Hub) Receive(ctx context.Context, req *protocol.ReceiveRequest) (*protocol.ReceiveResponse, error) {
	info, err := h.PartitionByKey(ctx, req.PartitionKey)
	if err != nil {
		return nil, err
	}
	budget := h.cfg.ReceiveMaxBytes
	es, err := h.store.Entries(ctx, info.Masked, int64(req.Counter)-1, h.cfg.ReceiveMaxMessages, budget)
	if err != nil {
		return nil, fmt.Errorf("hub: receive: %w", err)
	}
	resp := &protocol.ReceiveResponse{Epoch: protocol.Epoch{Messages: make([]protocol.Message, len(es))}}
	var next [][]byte
	for i, e := range es {
		resp.Epoch.Messages[i] = MessageOf(e)
		budget -= len(e.Message) + len(e.GroupInfo)
		if e.NextMasked != nil && len(next) < h.cfg.HintPartitions {
			next = append(next, e.NextMasked)
		}
	}
	for _, masked := range next {
		if budget <= 0 || h.cfg.HintMessages <= 0 {
			break
		}
		hs, err := h.store.Entries(ctx, masked, -1, h.cfg.HintMessages, budget)
		if err != nil {
			return nil, fmt.Errorf("hub: receive hints: %w", err)
		}
		if len(hs) == 0 {
			continue
		}
		he := protocol.HintedEpoch{MaskedPartitionKey: masked, Epoch: protocol.Epoch{Messages: make([]protocol.Message, len(hs))}}
		for i, e := range hs {
			he.Epoch.Messages[i] = MessageOf(e)
			budget -= len(e.Message) + len(e.GroupInfo)
		}
		resp.Hints = append(resp.Hints, he)
	}
	return resp, nil
}

// MessageOf is the draft's Message for a sequenced entry (the live push
// path sends the same structure).
func MessageOf(e Entry) protocol.Message {
	m := protocol.Message{Message: e.Message, ContentType: e.ContentType}
	if e.ContentType == mls.ContentTypeCommit {
		m.NextPartitionKey = e.NextMasked
		m.GroupInfo = e.GroupInfo
	}
	return m
}

// Log returns the hub's partition logs as the gateway and federation links push
// them: entries in the protocol's terms, with nothing that stays on this provider.
func (h *Hub) Log() PartitionLog { return PartitionLog{h} }

// PartitionLog is the hub's view of its partition logs for subscribers.
type PartitionLog struct{ h *Hub }

// partitionSink adapts a protocol.PartitionSink to the hub's Sink.
type partitionSink struct{ s protocol.PartitionSink }

func (k partitionSink) Notify(e Entry) { k.s.Notify(PartitionEntryOf(e)) }
func (k partitionSink) Refetch()       { k.s.Refetch() }

// PartitionEntryOf is the entry as pushed to subscribers. It does not encode: the
// subscribers' fan-out does, off the store's writer.
func PartitionEntryOf(e Entry) protocol.PartitionEntry {
	if e.Terminated {
		return protocol.PartitionEntry{Counter: e.Counter, Terminated: true}
	}
	return protocol.PartitionEntry{Counter: e.Counter, Message: MessageOf(e)}
}

// Subscribe registers a sink for a partition (by masked key).
func (l PartitionLog) Subscribe(masked []byte, s protocol.PartitionSink) (cancel func()) {
	return l.h.Subscribe(masked, partitionSink{s})
}

// Fetch returns up to limit entries with counter > after (-1: from the start); when
// it returns fewer than limit and the partition is terminated, the last entry is
// the terminated event.
func (l PartitionLog) Fetch(ctx context.Context, masked []byte, after int64, limit int) ([]protocol.PartitionEntry, error) {
	es, err := l.h.Fetch(ctx, masked, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]protocol.PartitionEntry, 0, len(es)+1)
	for _, e := range es {
		out = append(out, PartitionEntryOf(e))
	}
	if len(es) < limit {
		// The read may also stop at its byte budget: the terminated event comes only
		// once the last sequenced message was read.
		next := after + 1 + int64(len(es))
		info, err := l.h.Partition(ctx, masked)
		if err != nil {
			return nil, err
		}
		if info.Terminated && next >= int64(info.Length) {
			out = append(out, protocol.PartitionEntry{Counter: uint32(next), Terminated: true})
		}
	}
	return out, nil
}

// Masked checks that partitionKey opens a partition of a hosted group and returns
// its masked key.
func (l PartitionLog) Masked(ctx context.Context, partitionKey []byte) ([]byte, error) {
	info, err := l.h.PartitionByKey(ctx, partitionKey)
	if err != nil {
		return nil, err
	}
	return info.Masked, nil
}
