package provider

import (
	"context"
	"encoding"
	"errors"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/protocol"
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

// hubPartitions lets the gateway push partitions to subscribed sockets.
type hubPartitions struct{ h *hub.Hub }

var _ gateway.Partitions = hubPartitions{}

type hubSink struct{ s gateway.PartitionSink }

func (k hubSink) Notify(e hub.Entry) { k.s.Notify(partitionEntry(e)) }
func (k hubSink) Refetch()           { k.s.Refetch() }

func partitionEntry(e hub.Entry) gateway.PartitionEntry {
	if e.Terminated {
		return gateway.PartitionEntry{Counter: e.Counter, Terminated: true}
	}
	m := hub.MessageOf(e)
	b, _ := m.MarshalBinary()
	return gateway.PartitionEntry{Counter: e.Counter, Message: b}
}

func (p hubPartitions) Subscribe(masked []byte, s gateway.PartitionSink) func() {
	return p.h.Subscribe(masked, hubSink{s})
}

func (p hubPartitions) Fetch(ctx context.Context, masked []byte, after int64, limit int) ([]gateway.PartitionEntry, error) {
	es, err := p.h.Fetch(ctx, masked, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]gateway.PartitionEntry, 0, len(es)+1)
	for _, e := range es {
		out = append(out, partitionEntry(e))
	}
	if len(es) < limit {
		info, err := p.h.Partition(ctx, masked)
		if err != nil {
			return nil, err
		}
		if info.Terminated {
			out = append(out, gateway.PartitionEntry{Counter: uint32(after + 1 + int64(len(es))), Terminated: true})
		}
	}
	return out, nil
}

func (p hubPartitions) Masked(ctx context.Context, partitionKey []byte) ([]byte, error) {
	info, err := p.h.PartitionByKey(ctx, partitionKey)
	if err != nil {
		return nil, hubError(err)
	}
	return info.Masked, nil
}

// registerHub serves the group methods of the client socket.
func registerHub(srv *gateway.Server, h *hub.Hub, pol *directory.Policy) {
	sender := func(c *gateway.Caller) hub.Sender {
		return hub.Sender{ClientID: c.Client.ID, UserURI: c.UserURI, Local: true}
	}
	srv.Handle(protocol.MethodCreateGroup, hubMethod(func(ctx context.Context, c *gateway.Caller, req *protocol.CreateGroupRequest) (encoding.BinaryMarshaler, error) {
		resp, err := h.CreateGroup(ctx, sender(c), req)
		return &resp, err
	}))
	srv.Handle(protocol.MethodSend, hubMethod(func(ctx context.Context, c *gateway.Caller, req *protocol.SendRequest) (encoding.BinaryMarshaler, error) {
		return h.Send(ctx, sender(c), req)
	}))
	srv.Handle(protocol.MethodReceive, hubMethod(func(ctx context.Context, _ *gateway.Caller, req *protocol.ReceiveRequest) (encoding.BinaryMarshaler, error) {
		return h.Receive(ctx, req)
	}))
	srv.Handle(protocol.MethodGroupInfo, hubMethod(func(ctx context.Context, _ *gateway.Caller, req *protocol.GroupInfoRequest) (encoding.BinaryMarshaler, error) {
		return h.GroupInfo(ctx, req)
	}))
	srv.Handle(protocol.MethodExternalJoin, hubMethod(func(ctx context.Context, c *gateway.Caller, req *protocol.ExternalJoinRequest) (encoding.BinaryMarshaler, error) {
		resp, err := h.ExternalJoin(ctx, sender(c), req)
		return &resp, err
	}))
	srv.Handle(protocol.MethodReport, hubMethod(func(ctx context.Context, c *gateway.Caller, req *protocol.Report) (encoding.BinaryMarshaler, error) {
		id, err := pol.FileReport(ctx, directory.Reporter{ClientID: c.Client.ID, UserURI: c.UserURI}, *req)
		return reportID(id), err
	}))
}

// reportID answers a report: struct { uint64 report_id; }.
type reportID int64

func (r reportID) MarshalBinary() ([]byte, error) {
	w := protocol.NewWriter(nil)
	w.U64(uint64(r))
	return w.Bytes(), nil
}

// hubMethod adapts a typed hub call to a socket handler: it decodes the body, maps
// hub errors to wire codes and encodes the answer.
func hubMethod[T any, PT interface {
	*T
	encoding.BinaryUnmarshaler
}](fn func(context.Context, *gateway.Caller, PT) (encoding.BinaryMarshaler, error)) gateway.Handler {
	return func(ctx context.Context, c *gateway.Caller, body []byte) ([]byte, error) {
		req := PT(new(T))
		if err := req.UnmarshalBinary(body); err != nil {
			return nil, &protocol.Error{Code: protocol.CodeMalformed, Message: err.Error()}
		}
		resp, err := fn(ctx, c, req)
		if err != nil {
			return nil, hubError(err)
		}
		return resp.MarshalBinary()
	}
}

// hubError maps the hub's typed errors to wire error codes (docs/protocol.md §1.6).
func hubError(err error) error {
	code := protocol.Code(0)
	switch {
	case errors.Is(err, hub.ErrMalformed):
		code = protocol.CodeMalformed
	case errors.Is(err, hub.ErrTooLarge):
		code = protocol.CodeTooLarge
	case errors.Is(err, hub.ErrUnknownGroup), errors.Is(err, hub.ErrUnknownPartition),
		errors.Is(err, hub.ErrNoGroupInfo), errors.Is(err, hub.ErrNotFound):
		code = protocol.CodeNotFound
	case errors.Is(err, hub.ErrGroupExists), errors.Is(err, hub.ErrPartitionExists):
		code = protocol.CodeConflict
	case errors.Is(err, hub.ErrRateLimited):
		code = protocol.CodeRateLimited
	case errors.Is(err, hub.ErrTreeRequired):
		code = protocol.CodeTreeRequired
	case errors.Is(err, hub.ErrTerminated):
		code = protocol.CodeTerminated
	case errors.Is(err, hub.ErrWrongPartition):
		code = protocol.CodeWrongPartition
	case errors.Is(err, hub.ErrBanned), errors.Is(err, hub.ErrMuted), errors.Is(err, hub.ErrRemovedSender):
		code = protocol.CodePolicy
	case errors.Is(err, hub.ErrInvalidMessage), errors.Is(err, hub.ErrInvalidGroupInfo),
		errors.Is(err, hub.ErrTreeMismatch), errors.Is(err, hub.ErrWelcomeMismatch):
		code = protocol.CodeInvalidMLS
	case errors.Is(err, hub.ErrPartitionFull):
		code = protocol.CodeInvalid
	}
	if code == 0 {
		return err // internal
	}
	return &protocol.Error{Code: code, Message: err.Error()}
}

// ChangePartitions tells a running server that the admin CLI changed partitions
// (termination): subscribers refetch.
const ChangePartitions = "partitions"
