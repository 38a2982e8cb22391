package gateway

import (
	"context"
	"errors"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/protocol"
)

// Reports files the reports clients make (directory.Policy).
type Reports interface {
	FileReport(ctx context.Context, r directory.Reporter, report protocol.Report) (int64, error)
}

// Router serves the group methods of the client socket from the tables of the
// provider's two roles: a request for a group hosted here goes to the hub, any other
// to the follower. The hub is asked first; when it answers that it hosts no such
// group or partition (NotHosted), the follower is asked, if it serves the method.
// Creating a group always makes this provider its hub (the follower has no
// create_group).
type Router struct {
	// Static after construction.
	Hub       protocol.GroupMethods
	Follower  protocol.GroupMethods
	NotHosted func(err error) bool
}

// Handler routes one method.
func (r *Router) Handler(m protocol.Method) protocol.GroupHandler {
	hub, follower := r.Hub[m], r.Follower[m]
	if hub == nil {
		return follower
	}
	if follower == nil || r.NotHosted == nil {
		return hub
	}
	return func(ctx context.Context, s protocol.Sender, body []byte) ([]byte, error) {
		out, err := hub(ctx, s, body)
		if err != nil && r.NotHosted(err) {
			return follower(ctx, s, body)
		}
		return out, err
	}
}

// registerGroups serves the group methods of the client socket.
func (s *Server) registerGroups(r *Router, reports Reports) {
	methods := map[protocol.Method]bool{}
	for m := range r.Hub {
		methods[m] = true
	}
	for m := range r.Follower {
		methods[m] = true
	}
	for m := range methods {
		h := r.Handler(m)
		s.Handle(m, func(ctx context.Context, c *Caller, body []byte) ([]byte, error) {
			return h(ctx, protocol.Sender{ClientID: c.Client.ID, ClientURI: c.ClientURI, UserURI: c.UserURI, Local: true}, body)
		})
	}
	if reports != nil {
		s.Handle(protocol.MethodReport, func(ctx context.Context, c *Caller, body []byte) ([]byte, error) {
			var req protocol.Report
			if err := req.UnmarshalBinary(body); err != nil {
				return nil, &protocol.Error{Code: protocol.CodeMalformed, Message: err.Error()}
			}
			id, err := reports.FileReport(ctx, directory.Reporter{ClientID: c.Client.ID, UserURI: c.UserURI}, req)
			if err != nil {
				return nil, err
			}
			return reportID(id).MarshalBinary()
		})
	}
}

// reportID answers a report: struct { uint64 report_id; }.
type reportID int64

func (r reportID) MarshalBinary() ([]byte, error) {
	w := protocol.NewWriter(nil)
	w.U64(uint64(r))
	return w.Bytes(), nil
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
