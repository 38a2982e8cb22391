package hub

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime/trace"
	"strconv"

	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// sendOp is one request to sequence, decoded and checked for size.
type sendOp struct {
	sender  protocol.Sender
	message []byte // a private copy of the encoded MLSMessage
	msg     *mls.MLSMessage
	ct      mls.ContentType
	public  bool
	// external: a PublicMessage commit from a new_member_commit sender
	// (through external_join, or send).
	external bool
	groupID  []byte
	epoch    uint64
	commit   *protocol.CommitData
	hash     []byte // request hash (idempotence key)
}

// Send sequences a SendRequest from sender to the partition it names and
// returns its counter, once committed. A retry of a sequenced request gets
// the same counter. Errors wrap the package's sentinels.
func (h *Hub) Send(ctx context.Context, sender protocol.Sender, req *protocol.SendRequest) (protocol.SendResponse, error) {
	c, err := h.send(ctx, sender, req)
	if err != nil {
		h.refused(err)
		return protocol.SendResponse{}, err
	}
	return protocol.SendResponse{Counter: c}, nil
}

func (h *Hub) send(ctx context.Context, sender protocol.Sender, req *protocol.SendRequest) (uint32, error) {
	if err := h.checkSizes(req.Message, req.CommitData); err != nil {
		return 0, err
	}
	if len(req.PartitionKey) != protocol.PartitionKeySize {
		return 0, fmt.Errorf("%w: partition key of %d bytes", ErrMalformed, len(req.PartitionKey))
	}
	m, err := req.Parsed()
	if err != nil {
		return 0, err
	}
	op, err := newSendOp(sender, req.Message, m, req.CommitData)
	if err != nil {
		return 0, err
	}
	suite, err := h.groupSuite(ctx, op.groupID)
	if err != nil {
		return 0, err
	}
	if err := checkIntroduced(sender, m); err != nil {
		return 0, err
	}
	masked := suite.Hash(req.PartitionKey)
	ps, err := h.state(ctx, masked)
	if err != nil {
		return 0, err
	}
	defer h.states.release(ps)
	if string(ps.groupID) != string(op.groupID) {
		return 0, fmt.Errorf("%w: partition of another group", ErrWrongPartition)
	}
	op.hash = requestHash("send", masked, op)
	if op.ct != mls.ContentTypeApplication {
		// A retried handshake is answered before it is checked again (its
		// proposal would be cached twice, its commit's partition exists).
		// Application messages skip this read: Append recognizes a retry.
		if _, c, ok, err := h.store.FindRequest(ctx, op.hash); err != nil || ok {
			if ok {
				h.metrics.duplicates.Add(1)
			}
			return c, err
		}
	}
	if err := h.admit(ctx, sender); err != nil {
		return h.retried(ctx, op, err)
	}
	switch op.ct {
	case mls.ContentTypeApplication:
		c, err := h.sendApplication(ctx, ps, op)
		if err != nil {
			return h.retried(ctx, op, err)
		}
		return c, nil
	case mls.ContentTypeProposal:
		return h.sendProposal(ctx, ps, op)
	}
	res, err := h.sendCommit(ctx, ps, op)
	return res.Counter, err
}

// retried answers a refused application message from the log if it is a
// retry of one sequenced before (the limit or a mute came after it), and
// returns the refusal otherwise.
func (h *Hub) retried(ctx context.Context, op *sendOp, refusal error) (uint32, error) {
	if op.ct != mls.ContentTypeApplication {
		return 0, refusal
	}
	_, c, ok, err := h.store.FindRequest(ctx, op.hash)
	if err != nil || !ok {
		return 0, refusal
	}
	h.metrics.duplicates.Add(1)
	return c, nil
}

// newSendOp reads what the hub needs from the message's clear fields.
func newSendOp(sender protocol.Sender, message []byte, m *mls.MLSMessage, cd *protocol.CommitData) (*sendOp, error) {
	op := &sendOp{sender: sender, message: append([]byte(nil), message...), msg: m, commit: cd}
	switch {
	case m.WireFormat == mls.WireFormatPublicMessage && m.PublicMessage != nil:
		c := &m.PublicMessage.Content
		op.public, op.ct, op.groupID, op.epoch = true, c.ContentType, c.GroupID, c.Epoch
		op.external = c.ContentType == mls.ContentTypeCommit && c.Sender.SenderType == mls.SenderTypeNewMemberCommit
	case m.WireFormat == mls.WireFormatPrivateMessage && m.PrivateMessage != nil:
		p := m.PrivateMessage
		op.ct, op.groupID, op.epoch = p.ContentType, p.GroupID, p.Epoch
	default:
		return nil, fmt.Errorf("%w: %w (%s)", ErrMalformed, protocol.ErrNotFramed, m.WireFormat)
	}
	if (op.ct == mls.ContentTypeCommit) != (cd != nil) {
		return nil, fmt.Errorf("%w: commit_data must be present exactly for commits", ErrMalformed)
	}
	return op, nil
}

// checkSizes applies the configured limits.
func (h *Hub) checkSizes(message []byte, cd *protocol.CommitData) error {
	if len(message) > h.cfg.MaxMessageSize {
		return fmt.Errorf("%w: message of %d bytes, limit %d", ErrTooLarge, len(message), h.cfg.MaxMessageSize)
	}
	if cd == nil {
		return nil
	}
	if len(cd.GroupInfo) > h.cfg.MaxGroupInfoSize {
		return fmt.Errorf("%w: GroupInfo of %d bytes, limit %d", ErrTooLarge, len(cd.GroupInfo), h.cfg.MaxGroupInfoSize)
	}
	if cd.WelcomeData != nil && len(cd.WelcomeData.Welcome) > h.cfg.MaxWelcomeSize {
		return fmt.Errorf("%w: Welcome of %d bytes, limit %d", ErrTooLarge, len(cd.WelcomeData.Welcome), h.cfg.MaxWelcomeSize)
	}
	if len(cd.NextPartitionKey) != protocol.PartitionKeySize {
		return fmt.Errorf("%w: next partition key of %d bytes", ErrMalformed, len(cd.NextPartitionKey))
	}
	return nil
}

// requestHash is the idempotence key of a request: SHA-256 over its kind,
// the partition (sends) or group (external joins), the message and the
// commit data, with the next partition key masked so the store never holds
// a value derived from it other than its hash.
func requestHash(kind string, scope []byte, op *sendOp) []byte {
	w := protocol.NewWriter(make([]byte, 0, 64+len(op.message)))
	w.Opaque([]byte("mimids hub " + kind))
	w.Opaque(scope)
	w.Opaque(op.message)
	if cd := op.commit; cd != nil {
		nk := sha256.Sum256(cd.NextPartitionKey)
		w.Opaque(nk[:])
		w.Opaque(cd.GroupInfo)
		if wd := cd.WelcomeData; wd != nil {
			w.Opaque(wd.Welcome)
			for _, p := range wd.ServiceProviders {
				w.Opaque([]byte(p))
			}
		}
	}
	sum := sha256.Sum256(w.Bytes())
	return sum[:]
}

// admit applies the provider-wide ban and the rate limit to a local sender.
func (h *Hub) admit(ctx context.Context, s protocol.Sender) error {
	if !s.Local {
		return nil
	}
	user := protocol.UserOf(s.UserURI)
	banned, err := h.cfg.Policy.Banned(ctx, user)
	if err != nil {
		return err
	}
	if banned {
		return fmt.Errorf("%w: %s (provider)", ErrBanned, user)
	}
	key := user
	if key == "" {
		key = fmt.Sprintf("client:%d", s.ClientID)
	}
	if !h.cfg.Policy.Allow(key) {
		return fmt.Errorf("%w: %s", ErrRateLimited, key)
	}
	return nil
}

// checkUser refuses a user the provider banned (a visible member identity).
func (h *Hub) checkUser(ctx context.Context, user string, ps *policy, what string) error {
	if user == "" {
		return nil
	}
	banned, err := h.cfg.Policy.Banned(ctx, user)
	if err != nil {
		return err
	}
	if banned {
		return fmt.Errorf("%w: %s %s (provider)", ErrBanned, what, user)
	}
	if ps.isBanned(user) {
		return fmt.Errorf("%w: %s %s (group)", ErrBanned, what, user)
	}
	return nil
}

func (h *Hub) sendApplication(ctx context.Context, ps *partState, op *sendOp) (uint32, error) {
	if op.public {
		return 0, fmt.Errorf("%w: application data in a PublicMessage (RFC 9420 §6.2)", ErrInvalidMessage)
	}
	if op.sender.Local {
		user := protocol.UserOf(op.sender.UserURI)
		if ps.pol.isBanned(user) {
			return 0, fmt.Errorf("%w: %s (group)", ErrBanned, user)
		}
		if ps.pol.isMuted(user) {
			return 0, fmt.Errorf("%w: %s", ErrMuted, user)
		}
	}
	res, err := h.append(ctx, ps, op, nil, nil)
	return res.Counter, err
}

func (h *Hub) sendProposal(ctx context.Context, ps *partState, op *sendOp) (uint32, error) {
	if err := h.lockLoaded(ctx, ps); err != nil {
		return 0, err
	}
	defer ps.mu.Unlock()
	if op.epoch != ps.epoch {
		return 0, fmt.Errorf("%w: proposal for epoch %d in a partition of epoch %d", ErrWrongPartition, op.epoch, ps.epoch)
	}
	cached := false // the view holds the proposal (from any attempt)
	for attempt := 0; ; attempt++ {
		res, viewChanged, err := h.tryProposal(ctx, ps, op)
		cached = cached || viewChanged
		if errors.Is(err, ErrStale) && attempt < maxRechecks {
			// Another node sequenced a handshake since the check: apply it and
			// check again (a cached proposal is cached again harmlessly).
			h.metrics.rechecks.Add(1)
			if err = h.catchUp(ctx, ps); err == nil {
				continue
			}
		}
		switch {
		case err != nil && cached:
			h.invalidate(ps) // the proposal is cached but was not sequenced
		case err != nil || res.Duplicate:
		case viewChanged:
			h.metrics.checked.Add(1)
		default:
			h.metrics.unchecked.Add(1)
			if !op.public {
				ps.privateProposals = true
			}
		}
		return res.Counter, err
	}
}

// maxRechecks bounds how often a handshake is checked again because other nodes
// sequenced handshakes to its partition meanwhile (then ErrStale).
const maxRechecks = 8

// tryProposal checks a proposal against ps (ps.mu held), caches it in the view
// and sequences it on condition that no other node sequenced a handshake since.
func (h *Hub) tryProposal(ctx context.Context, ps *partState, op *sendOp) (res AppendResult, viewChanged bool, err error) {
	if op.public && ps.view != nil {
		pm := op.msg.PublicMessage
		if err := checkPeerMember(op.sender, ps.view, &pm.Content); err != nil {
			return res, false, err
		}
		if err := h.checkProposalPolicy(ctx, ps, pm); err != nil {
			return res, false, err
		}
		if _, err := ps.view.ProcessProposal(pm); err != nil {
			return res, false, mlsRefusal(err)
		}
		viewChanged = true
	}
	res, err = h.append(ctx, ps, op, nil, nil)
	return res, viewChanged, err
}

// checkProposalPolicy refuses a public proposal from a banned member, an
// Add of a banned user, and a moderation list that does not parse.
func (h *Hub) checkProposalPolicy(ctx context.Context, ps *partState, pm *mls.PublicMessage) error {
	c := &pm.Content
	if c.Sender.SenderType == mls.SenderTypeMember {
		if m, ok := ps.view.Member(c.Sender.LeafIndex); ok {
			if err := h.checkUser(ctx, identityOf(m), nil, "sender"); err != nil {
				return err
			}
		}
	}
	p := c.Proposal
	switch {
	case p == nil:
	case p.Add != nil:
		ln := &p.Add.KeyPackage.LeafNode
		if ln.Credential.CredentialType == mls.CredentialTypeBasic {
			return h.checkUser(ctx, protocol.UserOf(string(ln.Credential.Identity)), ps.pol, "add of")
		}
	case p.GroupContextExtensions != nil:
		if _, err := policyOf(p.GroupContextExtensions.Extensions); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidMessage, err)
		}
	}
	return nil
}

// mlsRefusal maps a failed mls check to the hub's errors.
func mlsRefusal(err error) error {
	if errors.Is(err, mls.ErrBlankSender) {
		return fmt.Errorf("%w: %w", ErrRemovedSender, err)
	}
	return fmt.Errorf("%w: %w", ErrInvalidMessage, err)
}

// lockLoaded locks ps.mu with the state loaded (it may have been
// invalidated) and brought to the end of the partition's log (catchUp), for
// checking a handshake. On error the lock is not held.
func (h *Hub) lockLoaded(ctx context.Context, ps *partState) error {
	ps.mu.Lock()
	err := h.load(ctx, ps)
	if err == nil {
		err = h.catchUp(ctx, ps)
	}
	if err != nil {
		ps.mu.Unlock()
		return err
	}
	return nil
}

// append sequences op to ps (opening next for a commit) and publishes it. A
// handshake checked against ps's view (ps.mu held) is appended on condition
// that no handshake was sequenced since ps.seen (else ErrStale), and moves
// ps.seen past itself.
func (h *Hub) append(ctx context.Context, ps *partState, op *sendOp, next *Partition, welcomes []PendingWelcome) (AppendResult, error) {
	a := AppendRequest{Masked: []byte(ps.masked), RequestHash: op.hash, ContentType: op.ct, Public: op.public,
		Message: op.message, SenderClient: op.sender.ClientID, Next: next, Welcomes: welcomes, At: h.cfg.Now()}
	if !op.sender.Local {
		a.SenderClient = 0
	}
	if op.ct != mls.ContentTypeApplication && ps.view != nil {
		a.Checked, a.HandshakesSeen = true, ps.seen
	}
	res, err := h.store.Append(ctx, a, h.publish)
	if err != nil {
		return res, err
	}
	if trace.IsEnabled() { // docs/performance.md, "Latency budget"
		trace.Log(ctx, "mimids", "sequenced "+strconv.FormatUint(uint64(res.Counter), 10))
	}
	if res.Duplicate {
		h.metrics.duplicates.Add(1)
	} else {
		h.metrics.sequenced.Add(1)
		if a.Checked {
			ps.seen = res.Counter + 1
		}
	}
	return res, nil
}

// refused counts a refusal of bad input or policy (an error with a wire code),
// and logs a failure of the server (anything else).
func (h *Hub) refused(err error) {
	if protocol.Refusal(err) {
		h.metrics.refused.Add(1)
		h.log.Debug("hub: refused", "err", err)
		return
	}
	h.log.Warn("hub: request failed", "err", err)
}
