package follower

import (
	"context"
	"errors"
	"fmt"

	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// send forwards a SendRequest to the hub of the message's group (or, failing a
// group route, of its partition) and learns the partition and, for a commit, the
// next partition.
func (f *Follower) send(ctx context.Context, s protocol.Sender, body []byte) ([]byte, error) {
	var req protocol.SendRequest
	if err := req.UnmarshalBinary(body); err != nil {
		return nil, malformed(err)
	}
	m, err := req.Parsed()
	if err != nil {
		return nil, malformed(err)
	}
	hub, ok, err := f.groupHub(ctx, groupOf(m))
	if err == nil && !ok {
		hub, ok, err = f.cfg.Routes.PartitionHub(ctx, KeyDigest(req.PartitionKey))
	}
	if err != nil {
		return nil, fmt.Errorf("follower: send: %w", err)
	}
	if !ok {
		return nil, ErrUnknownGroup
	}
	out, err := f.call(ctx, hub, protocol.MethodSend, s, body)
	if err != nil {
		return nil, err
	}
	keys := [][]byte{req.PartitionKey}
	if req.CommitData != nil {
		keys = append(keys, req.CommitData.NextPartitionKey)
	}
	f.learnPartitions(ctx, hub, keys...)
	return out, nil
}

// receive forwards a ReceiveRequest to the hub of its partition. A partition not
// known yet is tried at the hubs of the client's own groups (at most
// MaxCandidateHubs, most recent first) until one does not answer not_found.
func (f *Follower) receive(ctx context.Context, s protocol.Sender, body []byte) ([]byte, error) {
	var req protocol.ReceiveRequest
	if err := req.UnmarshalBinary(body); err != nil {
		return nil, malformed(err)
	}
	digest := KeyDigest(req.PartitionKey)
	hub, ok, err := f.cfg.Routes.PartitionHub(ctx, digest)
	if err != nil {
		return nil, fmt.Errorf("follower: receive: %w", err)
	}
	if ok {
		return f.call(ctx, hub, protocol.MethodReceive, s, body)
	}
	hubs, err := f.cfg.Routes.ClientHubs(ctx, s.ClientID, MaxCandidateHubs)
	if err != nil {
		return nil, fmt.Errorf("follower: receive: %w", err)
	}
	for _, hub := range hubs {
		out, err := f.call(ctx, hub, protocol.MethodReceive, s, body)
		if code, _ := protocol.CodeOf(err); err != nil && code == protocol.CodeNotFound {
			continue
		}
		if err != nil {
			return nil, err
		}
		f.learnPartitions(ctx, hub, req.PartitionKey)
		return out, nil
	}
	return nil, ErrUnknownGroup
}

// groupInfo forwards a GroupInfoRequest to the group's hub.
func (f *Follower) groupInfo(ctx context.Context, s protocol.Sender, body []byte) ([]byte, error) {
	var req protocol.GroupInfoRequest
	if err := req.UnmarshalBinary(body); err != nil {
		return nil, malformed(err)
	}
	hub, ok, err := f.groupHub(ctx, req.GroupID)
	if err != nil || !ok {
		return nil, err
	}
	return f.call(ctx, hub, protocol.MethodGroupInfo, s, body)
}

// externalJoin forwards an ExternalJoinRequest to the group's hub.
func (f *Follower) externalJoin(ctx context.Context, s protocol.Sender, body []byte) ([]byte, error) {
	var req protocol.ExternalJoinRequest
	if err := req.UnmarshalBinary(body); err != nil {
		return nil, malformed(err)
	}
	m, err := req.Parsed()
	if err != nil {
		return nil, malformed(err)
	}
	hub, ok, err := f.groupHub(ctx, groupOf(m))
	if err != nil || !ok {
		return nil, err
	}
	return f.joined(ctx, hub, s, &req, body)
}

// joined forwards an external join to hub and learns the client's new partition.
func (f *Follower) joined(ctx context.Context, hub string, s protocol.Sender, req *protocol.ExternalJoinRequest, body []byte) ([]byte, error) {
	out, err := f.call(ctx, hub, protocol.MethodExternalJoin, s, body)
	if err != nil {
		return nil, err
	}
	f.learnPartitions(ctx, hub, req.CommitData.NextPartitionKey)
	f.learned("client hub", f.cfg.Routes.AddClientHub(ctx, s.ClientID, hub))
	return out, nil
}

// groupInfoAt is group_info at the hub the client names; the hub's answer teaches
// the follower the group's hub (unless one is known: then the known one is asked).
func (f *Follower) groupInfoAt(ctx context.Context, s protocol.Sender, body []byte) ([]byte, error) {
	hub, inner, err := f.hint(body)
	if err != nil {
		return nil, err
	}
	var req protocol.GroupInfoRequest
	if err := req.UnmarshalBinary(inner); err != nil {
		return nil, malformed(err)
	}
	if hub, err = f.knownOr(ctx, req.GroupID, hub); err != nil {
		return nil, fmt.Errorf("follower: group_info_at: %w", err)
	}
	out, err := f.call(ctx, hub, protocol.MethodGroupInfo, s, inner)
	if err != nil {
		return nil, err
	}
	f.learned("group hub", f.cfg.Routes.SetGroupHub(ctx, req.GroupID, hub))
	return out, nil
}

// externalJoinAt is external_join at the hub the client names (unless the group's
// hub is known); a join the hub sequenced teaches the follower the group's hub.
func (f *Follower) externalJoinAt(ctx context.Context, s protocol.Sender, body []byte) ([]byte, error) {
	hub, inner, err := f.hint(body)
	if err != nil {
		return nil, err
	}
	var req protocol.ExternalJoinRequest
	if err := req.UnmarshalBinary(inner); err != nil {
		return nil, malformed(err)
	}
	m, err := req.Parsed()
	if err != nil {
		return nil, malformed(err)
	}
	group := groupOf(m)
	if hub, err = f.knownOr(ctx, group, hub); err != nil {
		return nil, fmt.Errorf("follower: external_join_at: %w", err)
	}
	out, err := f.joined(ctx, hub, s, &req, inner)
	if err != nil {
		return nil, err
	}
	f.learned("group hub", f.cfg.Routes.SetGroupHub(ctx, group, hub))
	return out, nil
}

// knownOr returns the hub already known for group, else hinted: a client's hint
// never moves a group the follower has a route for.
func (f *Follower) knownOr(ctx context.Context, group []byte, hinted string) (string, error) {
	known, ok, err := f.cfg.Routes.GroupHub(ctx, group)
	if err != nil || !ok {
		return hinted, err
	}
	return known, nil
}

// hint reads a HubHinted body; a hint naming this provider is refused (its groups
// are the hub's, and the hub did not find this one).
func (f *Follower) hint(body []byte) (string, []byte, error) {
	var h protocol.HubHinted
	if err := h.UnmarshalBinary(body); err != nil {
		return "", nil, malformed(err)
	}
	if h.Hub == f.cfg.Domain {
		return "", nil, ErrUnknownGroup
	}
	return h.Hub, h.Body, nil
}

// groupHub returns the group's hub; not ok with ErrUnknownGroup when none is
// known.
func (f *Follower) groupHub(ctx context.Context, group []byte) (string, bool, error) {
	if group == nil {
		return "", false, ErrUnknownGroup
	}
	hub, ok, err := f.cfg.Routes.GroupHub(ctx, group)
	if err != nil {
		return "", false, fmt.Errorf("follower: group hub: %w", err)
	}
	if !ok {
		return "", false, ErrUnknownGroup
	}
	return hub, true, nil
}

// call forwards one request to hub and waits (at most the configured timeout) for
// its answer, unless the hub's terms refuse it first. The hub's refusal keeps its
// wire code.
func (f *Follower) call(ctx context.Context, hub string, m protocol.Method, s protocol.Sender, body []byte) ([]byte, error) {
	if err := f.checkOwn(ctx, m, s); err != nil {
		return nil, err
	}
	if err := f.cfg.Terms.Check(hub, m, s.UserURI); err != nil {
		return nil, err // the hub's terms, enforced here (terms.go)
	}
	env, err := (&protocol.GroupRequest{Method: m, UserURI: s.UserURI, Body: body}).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("follower: %s: %w", m, err)
	}
	cctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	out, err := f.cfg.Link.Call(cctx, hub, protocol.EnvelopeGroupRequest, env)
	switch {
	case err == nil:
		return out, nil
	case protocol.Refusal(err):
		return nil, err
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		f.log.Warn("hub did not answer a forwarded request", "hub", hub, "method", m.String(), "timeout", f.cfg.Timeout)
		return nil, fmt.Errorf("%w: %s at %s", ErrHubUnreachable, m, hub)
	}
	return nil, fmt.Errorf("follower: %s at %s: %w", m, hub, err)
}

// learnPartitions records hub as the hub of each partition key given.
func (f *Follower) learnPartitions(ctx context.Context, hub string, keys ...[]byte) {
	for _, k := range keys {
		if len(k) != 0 {
			f.learned("partition hub", f.cfg.Routes.SetPartitionHub(ctx, KeyDigest(k), hub))
		}
	}
}

// learned logs a route that could not be recorded after the hub answered: the
// answer stands (the hub applied the request); the route is learned again later.
func (f *Follower) learned(what string, err error) {
	if err != nil {
		f.log.Warn("follower: route not recorded", "route", what, "err", err)
	}
}

// groupOf is the group id in a message's clear fields, nil for other wire formats.
func groupOf(m *mls.MLSMessage) []byte {
	switch {
	case m.PublicMessage != nil:
		return m.PublicMessage.Content.GroupID
	case m.PrivateMessage != nil:
		return m.PrivateMessage.GroupID
	}
	return nil
}

func malformed(err error) error {
	if _, coded := protocol.CodeOf(err); coded {
		return err
	}
	return fmt.Errorf("%w: %w", protocol.ErrMalformed, err)
}

// checkOwn applies this provider's own bans to its users' forwarded requests, and
// its rate limit to those that sequence (send, external_join), as the hub does for
// its local senders.
func (f *Follower) checkOwn(ctx context.Context, m protocol.Method, s protocol.Sender) error {
	if f.cfg.Own == nil || !s.Local {
		return nil
	}
	user := protocol.UserOf(s.UserURI)
	banned, err := f.cfg.Own.Banned(ctx, user)
	if err != nil {
		return fmt.Errorf("follower: bans: %w", err)
	}
	if banned {
		return fmt.Errorf("%w: %s", ErrBannedHere, user)
	}
	if (m == protocol.MethodSend || m == protocol.MethodExternalJoin) && !f.cfg.Own.Allow(user) {
		return fmt.Errorf("%w: %s", ErrRateLimitedHere, user)
	}
	return nil
}
