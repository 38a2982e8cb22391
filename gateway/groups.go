package gateway

import (
	"context"
	"encoding"
	"errors"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/protocol"
)

// GroupHost serves the group methods for the groups of one role of this provider:
// the hub, for groups hosted here, or the follower, for groups hosted elsewhere.
// Errors carry their wire code (protocol.NewError).
type GroupHost interface {
	Send(ctx context.Context, s protocol.Sender, req *protocol.SendRequest) (protocol.SendResponse, error)
	Receive(ctx context.Context, req *protocol.ReceiveRequest) (*protocol.ReceiveResponse, error)
	GroupInfo(ctx context.Context, req *protocol.GroupInfoRequest) (*protocol.GroupInfoResponse, error)
	ExternalJoin(ctx context.Context, s protocol.Sender, req *protocol.ExternalJoinRequest) (protocol.ExternalJoinResponse, error)
}

// Hub is the role that hosts groups: it also creates them, and tells which groups
// and partitions it hosts.
type Hub interface {
	GroupHost
	CreateGroup(ctx context.Context, s protocol.Sender, req *protocol.CreateGroupRequest) (protocol.CreateGroupResponse, error)
}

// Reports files the reports clients make (directory.Policy).
type Reports interface {
	FileReport(ctx context.Context, r directory.Reporter, report protocol.Report) (int64, error)
}

// NotHosted reports whether err says that a role does not serve a group or
// partition at all (protocol.CodeNotFound from a lookup), so the router may ask the
// other role.
type NotHosted func(err error) bool

// Router serves the group methods of the client socket: a request for a group
// hosted here goes to the hub, any other to the follower. The hub is asked first;
// when it answers that it hosts no such group or partition (NotHosted), the
// follower is asked. Creating a group always makes this provider its hub.
type Router struct {
	// Static after construction.
	Hub       Hub
	Follower  GroupHost
	NotHosted NotHosted
}

var _ GroupHost = (*Router)(nil)

func (r *Router) route(err error) bool {
	return r.Follower != nil && r.NotHosted != nil && r.NotHosted(err)
}

// Send sequences a message at the group's hub.
func (r *Router) Send(ctx context.Context, s protocol.Sender, req *protocol.SendRequest) (protocol.SendResponse, error) {
	resp, err := r.Hub.Send(ctx, s, req)
	if err != nil && r.route(err) {
		return r.Follower.Send(ctx, s, req)
	}
	return resp, err
}

// Receive reads a partition.
func (r *Router) Receive(ctx context.Context, req *protocol.ReceiveRequest) (*protocol.ReceiveResponse, error) {
	resp, err := r.Hub.Receive(ctx, req)
	if err != nil && r.route(err) {
		return r.Follower.Receive(ctx, req)
	}
	return resp, err
}

// GroupInfo answers the group's newest GroupInfo.
func (r *Router) GroupInfo(ctx context.Context, req *protocol.GroupInfoRequest) (*protocol.GroupInfoResponse, error) {
	resp, err := r.Hub.GroupInfo(ctx, req)
	if err != nil && r.route(err) {
		return r.Follower.GroupInfo(ctx, req)
	}
	return resp, err
}

// ExternalJoin sequences an external commit at the group's hub.
func (r *Router) ExternalJoin(ctx context.Context, s protocol.Sender, req *protocol.ExternalJoinRequest) (protocol.ExternalJoinResponse, error) {
	resp, err := r.Hub.ExternalJoin(ctx, s, req)
	if err != nil && r.route(err) {
		return r.Follower.ExternalJoin(ctx, s, req)
	}
	return resp, err
}

// registerGroups serves the group methods of the client socket.
func (s *Server) registerGroups(r *Router, reports Reports) {
	sender := func(c *Caller) protocol.Sender {
		return protocol.Sender{ClientID: c.Client.ID, UserURI: c.UserURI, Local: true}
	}
	s.Handle(protocol.MethodCreateGroup, method(func(ctx context.Context, c *Caller, req *protocol.CreateGroupRequest) (encoding.BinaryMarshaler, error) {
		resp, err := r.Hub.CreateGroup(ctx, sender(c), req)
		return &resp, err
	}))
	s.Handle(protocol.MethodSend, method(func(ctx context.Context, c *Caller, req *protocol.SendRequest) (encoding.BinaryMarshaler, error) {
		return r.Send(ctx, sender(c), req)
	}))
	s.Handle(protocol.MethodReceive, method(func(ctx context.Context, _ *Caller, req *protocol.ReceiveRequest) (encoding.BinaryMarshaler, error) {
		return r.Receive(ctx, req)
	}))
	s.Handle(protocol.MethodGroupInfo, method(func(ctx context.Context, _ *Caller, req *protocol.GroupInfoRequest) (encoding.BinaryMarshaler, error) {
		return r.GroupInfo(ctx, req)
	}))
	s.Handle(protocol.MethodExternalJoin, method(func(ctx context.Context, c *Caller, req *protocol.ExternalJoinRequest) (encoding.BinaryMarshaler, error) {
		resp, err := r.ExternalJoin(ctx, sender(c), req)
		return &resp, err
	}))
	if reports != nil {
		s.Handle(protocol.MethodReport, method(func(ctx context.Context, c *Caller, req *protocol.Report) (encoding.BinaryMarshaler, error) {
			id, err := reports.FileReport(ctx, directory.Reporter{ClientID: c.Client.ID, UserURI: c.UserURI}, *req)
			return reportID(id), err
		}))
	}
}

// reportID answers a report: struct { uint64 report_id; }.
type reportID int64

func (r reportID) MarshalBinary() ([]byte, error) {
	w := protocol.NewWriter(nil)
	w.U64(uint64(r))
	return w.Bytes(), nil
}

// method adapts a typed call to a socket handler: it decodes the body, gives errors
// their wire codes and encodes the answer.
func method[T any, PT interface {
	*T
	encoding.BinaryUnmarshaler
}](fn func(context.Context, *Caller, PT) (encoding.BinaryMarshaler, error)) Handler {
	return func(ctx context.Context, c *Caller, body []byte) ([]byte, error) {
		req := PT(new(T))
		if err := req.UnmarshalBinary(body); err != nil {
			return nil, &protocol.Error{Code: protocol.CodeMalformed, Message: err.Error()}
		}
		resp, err := fn(ctx, c, req)
		if err != nil {
			return nil, err
		}
		return resp.MarshalBinary()
	}
}

// wireError is the error frame of a failed request: the code an error carries, or
// CodeInternal (with no detail: the cause is logged) for anything else.
func wireError(err error) (we *protocol.Error, internal bool) {
	if errors.As(err, &we) {
		return we, false
	}
	if code, ok := protocol.CodeOf(err); ok {
		return &protocol.Error{Code: code, Message: err.Error()}, false
	}
	return &protocol.Error{Code: protocol.CodeInternal, Message: "internal error"}, true
}
