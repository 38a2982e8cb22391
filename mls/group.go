package mls

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"
)

// Sentinel errors of the public group state. ProcessProposal and
// ProcessCommit wrap them (or tree, signature and framing errors) with what
// was wrong; test with errors.Is.
var (
	// ErrNoRatchetTree means a GroupInfo without a ratchet_tree extension
	// and no tree given separately.
	ErrNoRatchetTree = errors.New("mls: no ratchet tree")
	// ErrGroupInfoSigner means the GroupInfo signer is not a member.
	ErrGroupInfoSigner = errors.New("mls: GroupInfo signer is not a member")
	// ErrNotHandshake means a PublicMessage that carries neither a proposal
	// nor a commit, or a message that is not a PublicMessage.
	ErrNotHandshake = errors.New("mls: not a public proposal or commit")
	// ErrBlankSender means a member sender whose leaf is blank or outside the tree.
	ErrBlankSender = errors.New("mls: sender leaf is blank")
	// ErrUnknownExternalSender means a sender_index outside external_senders.
	ErrUnknownExternalSender = errors.New("mls: unknown external sender")
	// ErrUnknownProposalRef means a commit references a proposal that was not
	// sequenced in the current epoch.
	ErrUnknownProposalRef = errors.New("mls: proposal reference never seen in this epoch")
	// ErrMissingConfirmationTag means a commit without a confirmation tag of
	// the suite's MAC length.
	ErrMissingConfirmationTag = errors.New("mls: commit confirmation tag missing or malformed")
	// ErrPathRequired means a commit without UpdatePath whose proposals
	// require one (§12.4), or an external commit without one.
	ErrPathRequired = errors.New("mls: commit requires an UpdatePath")
	// ErrInvalidProposal means a proposal invalid on its own (§12.1): e.g. a
	// PSK nonce of the wrong length, a ReInit to an older version, an Update
	// leaf that keeps its encryption key.
	ErrInvalidProposal = errors.New("mls: invalid proposal")
	// ErrDuplicateAdd means two Adds for the same client, or an Add for a
	// client already in the group (§12.2).
	ErrDuplicateAdd = errors.New("mls: duplicate Add of one client")
	// ErrRemoveCommitter means a commit that removes its own sender (§12.2).
	ErrRemoveCommitter = errors.New("mls: commit removes the committer")
	// ErrUpdateByCommitter means a commit covering the committer's own Update (§12.2).
	ErrUpdateByCommitter = errors.New("mls: commit covers an Update by the committer")
	// ErrConflictingProposals means two Update/Remove proposals for one leaf,
	// two PreSharedKey proposals for one PSK, two GroupContextExtensions
	// proposals, or a ReInit with other proposals (§12.2).
	ErrConflictingProposals = errors.New("mls: conflicting proposals in commit")
	// ErrExternalInitMisuse means an ExternalInit in a regular commit, or an
	// external commit whose proposal list breaks §12.2's external rules.
	ErrExternalInitMisuse = errors.New("mls: invalid external commit or ExternalInit")
	// ErrUnsupportedProposal means a non-default proposal type, or a
	// GroupContext extension, that some member does not support.
	ErrUnsupportedProposal = errors.New("mls: proposal or extension not supported by every member")
)

// OpError reports which PublicGroup operation failed ("group info",
// "proposal", "commit") and why; Err wraps the package's sentinels.
type OpError struct {
	Op  string
	Err error
}

func (e *OpError) Error() string {
	return "mls: " + e.Op + ": " + strings.TrimPrefix(e.Err.Error(), "mls: ")
}

// Unwrap returns the cause.
func (e *OpError) Unwrap() error { return e.Err }

// Options tune how a PublicGroup judges what RFC 9420 leaves open or what
// real clients are known to do. The zero value is the documented default.
type Options struct {
	// StrictGroupContextExtensionsPath rejects a commit without UpdatePath
	// whose only path-requiring proposal is GroupContextExtensions. RFC 9420
	// §12.4 requires a path there, but ts-mls omits it and its members
	// accept the commit, so the default (false) is lenient: such a commit is
	// applied. Commits with Update, Remove or ExternalInit, or with no
	// proposals, always need a path.
	StrictGroupContextExtensionsPath bool
	// StrictExtensionSupport requires every member (and every added member)
	// to list every GroupContext extension type in its capabilities (RFC 9420
	// §13.4). The default (false) enforces only required_capabilities, as
	// ts-mls members do, so a hub can add its own policy extension to groups
	// whose clients do not advertise it.
	StrictExtensionSupport bool
	// Now, when set, is the clock against which the lifetimes of KeyPackages
	// in Add proposals are checked. RFC 9420 §7.3 only recommends this for
	// received messages (a KeyPackage may expire in flight), so by default
	// lifetimes are not checked.
	Now func() time.Time
	// SameClient reports whether two leaves are the same client, for the
	// duplicate-Add rules of §12.2. The default compares signature keys (the
	// RFC's example); a basic credential identity names a user, who may have
	// several clients.
	SameClient func(a, b *LeafNode) bool
}

func (o *Options) sameClient(a, b *LeafNode) bool {
	if o.SameClient != nil {
		return o.SameClient(a, b)
	}
	return string(a.SignatureKey) == string(b.SignatureKey)
}

// PublicGroup is the public (non-member) state of one MLS group at one
// epoch, as a Delivery Service tracks it (RFC 9420 §12, public parts): the
// GroupContext, the ratchet tree, the interim transcript hash, and the
// proposals sequenced so far in the epoch. It holds no secrets, so it cannot
// check membership or confirmation tags, path ciphertexts or ExternalInit
// outputs, nor whether PSKs exist; credentials are the application's to
// judge (use the reported Members). It checks the rest of what a member
// checks on a PublicMessage.
//
// ProcessCommit never modifies its receiver: it returns the next epoch's
// state, so two commits to one epoch (a fork) each apply to the same parent.
// ProcessProposal adds to the receiver's proposal cache. A PublicGroup is
// not safe for concurrent use; Clone is cheap (it shares immutable nodes).
// Decoded messages given to a PublicGroup are retained: their buffers must
// not be modified afterwards.
type PublicGroup struct {
	suite     *Suite
	ctx       GroupContext
	tree      *Tree
	interim   []byte
	proposals map[string]*cachedProposal // by ProposalRef
	opts      Options
}

// cachedProposal is a proposal sequenced in the current epoch.
type cachedProposal struct {
	ref      []byte
	proposal *Proposal
	sender   Sender
}

// Member describes one member (non-blank leaf) of the group.
type Member struct {
	LeafIndex    uint32
	Credential   Credential
	Identity     []byte // the basic credential's identity; nil for other types
	SignatureKey []byte
	// KeyPackageRef is set for members added by an Add proposal in a
	// CommitResult, so a Welcome can be checked against the commit.
	KeyPackageRef []byte
}

func memberOf(i uint32, ln *LeafNode) Member {
	m := Member{LeafIndex: i, Credential: ln.Credential, SignatureKey: ln.SignatureKey}
	if ln.Credential.CredentialType == CredentialTypeBasic {
		m.Identity = ln.Credential.Identity
	}
	return m
}

// NewPublicGroup builds the public state of a group from a GroupInfo and
// its ratchet tree: tree is used when non-nil, otherwise the GroupInfo's
// ratchet_tree extension. It checks what a joiner checks that needs no
// secret (§12.4.3.1): a supported suite and version, the tree's integrity
// (Tree.Validate), its hash against group_context.tree_hash, and the
// GroupInfo signature (label "GroupInfoTBS") under the signer's leaf.
func NewPublicGroup(gi *GroupInfo, tree RatchetTree, opts Options) (*PublicGroup, error) {
	g, err := newPublicGroup(gi, tree, opts)
	if err != nil {
		return nil, &OpError{Op: "group info", Err: err}
	}
	return g, nil
}

func newPublicGroup(gi *GroupInfo, tree RatchetTree, opts Options) (*PublicGroup, error) {
	gc := gi.GroupContext
	if gc.Version != ProtocolVersionMLS10 {
		return nil, fmt.Errorf("%w: %s", ErrUnsupportedVersion, gc.Version)
	}
	s, err := gc.CipherSuite.Suite()
	if err != nil {
		return nil, err
	}
	if tree == nil {
		if !gi.Extensions.Has(ExtensionTypeRatchetTree) {
			return nil, ErrNoRatchetTree
		}
		if tree, err = gi.Extensions.RatchetTree(); err != nil {
			return nil, fmt.Errorf("ratchet_tree extension: %w", err)
		}
	}
	t, err := NewTree(gc.CipherSuite, tree)
	if err != nil {
		return nil, err
	}
	if th := t.TreeHash(); string(th) != string(gc.TreeHash) {
		return nil, fmt.Errorf("%w: tree %x, group context %x", ErrTreeHashMismatch, th, gc.TreeHash)
	}
	if err := t.Validate(gc.GroupID, gc.Extensions); err != nil {
		return nil, fmt.Errorf("ratchet tree: %w", err)
	}
	signer := t.Leaf(gi.Signer)
	if signer == nil {
		return nil, fmt.Errorf("%w: leaf %d", ErrGroupInfoSigner, gi.Signer)
	}
	tbs, err := gi.TBS()
	if err != nil {
		return nil, err
	}
	if err := s.VerifyWithLabel(signer.SignatureKey, GroupInfoTBSLabel, tbs, gi.Signature); err != nil {
		return nil, fmt.Errorf("signature (signer %d): %w", gi.Signer, err)
	}
	g := &PublicGroup{suite: s, ctx: gc, tree: t, opts: opts,
		interim:   InterimTranscriptHash(s, gc.ConfirmedTranscriptHash, gi.ConfirmationTag),
		proposals: map[string]*cachedProposal{}}
	if opts.StrictExtensionSupport {
		if err := g.checkExtensionSupport(t, gc.Extensions); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// Clone returns an independent copy of g.
func (g *PublicGroup) Clone() *PublicGroup {
	c := *g
	c.tree = g.tree.Clone()
	c.proposals = maps.Clone(g.proposals)
	return &c
}

// GroupContext returns the current GroupContext. Its slices are shared with
// g and must not be modified.
func (g *PublicGroup) GroupContext() GroupContext { return g.ctx }

// Epoch returns the current epoch.
func (g *PublicGroup) Epoch() uint64 { return g.ctx.Epoch }

// GroupID returns the group ID.
func (g *PublicGroup) GroupID() []byte { return g.ctx.GroupID }

// Suite returns the group's cipher suite primitives.
func (g *PublicGroup) Suite() *Suite { return g.suite }

// TreeHash returns the tree hash of the current ratchet tree.
func (g *PublicGroup) TreeHash() []byte { return g.ctx.TreeHash }

// InterimTranscriptHash returns the current interim transcript hash.
func (g *PublicGroup) InterimTranscriptHash() []byte { return g.interim }

// Extensions returns the current GroupContext extensions.
func (g *PublicGroup) Extensions() Extensions { return g.ctx.Extensions }

// RatchetTree returns the current tree as the ratchet_tree extension
// carries it (shared nodes).
func (g *PublicGroup) RatchetTree() RatchetTree { return g.tree.RatchetTree() }

// Tree returns the current ratchet tree. Callers must not modify it; Clone
// it first.
func (g *PublicGroup) Tree() *Tree { return g.tree }

// Members returns the members in leaf order.
func (g *PublicGroup) Members() []Member {
	out := make([]Member, 0, 8)
	g.tree.leaves(func(i uint32, ln *LeafNode) bool {
		out = append(out, memberOf(i, ln))
		return true
	})
	return out
}

// Member returns the member at leaf i, if that leaf is not blank.
func (g *PublicGroup) Member(i uint32) (Member, bool) {
	ln := g.tree.Leaf(i)
	if ln == nil {
		return Member{}, false
	}
	return memberOf(i, ln), true
}

// PendingProposals returns the ProposalRefs sequenced in the current epoch.
func (g *PublicGroup) PendingProposals() [][]byte {
	out := make([][]byte, 0, len(g.proposals))
	for _, p := range g.proposals {
		out = append(out, p.ref)
	}
	return out
}

// checkExtensionSupport checks that every member of t lists every
// extension type of ext in its capabilities (§13.4).
func (g *PublicGroup) checkExtensionSupport(t *Tree, ext Extensions) error {
	var err error
	t.leaves(func(i uint32, ln *LeafNode) bool {
		for _, e := range ext {
			if !ln.Capabilities.SupportsExtension(e.ExtensionType) {
				err = fmt.Errorf("%w: leaf %d does not support group extension %s", ErrUnsupportedProposal, i, e.ExtensionType)
				return false
			}
		}
		return true
	})
	return err
}
