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
