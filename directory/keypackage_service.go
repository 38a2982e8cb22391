package directory

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// KeyPackageConfig configures the KeyPackage service.
type KeyPackageConfig struct {
	// MaxPerUpload bounds the KeyPackages of one upload (default 100).
	MaxPerUpload int
	// MaxPerClient bounds the KeyPackages one client has stored, all suites and last
	// resorts included (default 1000).
	MaxPerClient int
	// LowThreshold: a claim that leaves a client with fewer usable KeyPackages of a
	// suite than this queues one key_packages_low notice (default 5).
	LowThreshold int
	// UploadRate and UploadBurst are the token bucket of each client's uploads;
	// UploadRate of zero or less disables the limit (the provider's configuration
	// defaults to DefaultUploadRate and DefaultUploadBurst).
	UploadRate  float64
	UploadBurst int
	// Claims bound how fast one user's KeyPackages are claimed (keypackage_limits.go).
	Claims ClaimLimits
	// Clock is the time source for upload validation; nil: time.Now. For tests.
	Clock func() time.Time
	// Metrics are hooks the service calls (not parsed from configuration).
	Metrics KeyPackageMetrics
}

// KeyPackageMetrics are counters the KeyPackage service updates; any field may be nil.
type KeyPackageMetrics struct {
	// Uploaded counts KeyPackages stored.
	Uploaded func(n int)
	// Fetched counts answered fetch requests by status; lastResort tells whether a
	// StatusOK answer served a last resort.
	Fetched func(s protocol.FetchStatus, lastResort bool)
	// LowStockNotices counts key_packages_low notices queued.
	LowStockNotices func()
	// Verified counts uploaded KeyPackages whose signatures were verified (the costly
	// part of an upload; refusals found before it verify nothing).
	Verified func(n int)
	// ExhaustedNotices counts key_packages_exhausted notices queued, by reason.
	ExhaustedNotices func(protocol.ExhaustedReason)
}

func (c *KeyPackageConfig) defaults() {
	if c.MaxPerUpload == 0 {
		c.MaxPerUpload = 100
	}
	if c.MaxPerClient == 0 {
		c.MaxPerClient = 1000
	}
	if c.LowThreshold == 0 {
		c.LowThreshold = 5
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// Validate reports every problem of the configuration, defaults applied.
func (c KeyPackageConfig) Validate() error {
	c.defaults()
	var errs []error
	if c.MaxPerUpload < 1 || c.MaxPerUpload > 1000 {
		errs = append(errs, fmt.Errorf("directory: keypackages: max per upload %d not in 1..1000", c.MaxPerUpload))
	}
	if c.MaxPerClient < 1 || c.MaxPerClient > 100000 {
		errs = append(errs, fmt.Errorf("directory: keypackages: max per client %d not in 1..100000", c.MaxPerClient))
	}
	if c.MaxPerUpload > c.MaxPerClient {
		errs = append(errs, fmt.Errorf("directory: keypackages: max per upload %d over max per client %d", c.MaxPerUpload, c.MaxPerClient))
	}
	if c.LowThreshold < 1 || c.LowThreshold > c.MaxPerClient {
		errs = append(errs, fmt.Errorf("directory: keypackages: low threshold %d not in 1..max per client", c.LowThreshold))
	}
	if c.UploadRate > 0 && c.UploadBurst < 1 {
		errs = append(errs, fmt.Errorf("directory: keypackages: upload burst %d < 1 with an upload rate", c.UploadBurst))
	}
	errs = append(errs, c.Claims.validate()...)
	return errors.Join(errs...)
}

// Notifier queues a durable mailbox entry; *mailbox.Mailbox is one.
type Notifier interface {
	Enqueue(ctx context.Context, t mailbox.Target, kind uint16, payload []byte) (int, error)
}

// KeyPackages stores the KeyPackages this provider's clients upload and serves them to
// fetches from other providers.
type KeyPackages struct {
	// Static after construction.
	dir     *Directory
	store   KeyPackageStore
	disc    *Discovery
	notify  Notifier
	cfg     KeyPackageConfig
	log     *slog.Logger
	uploads *TokenBuckets // per client
	limits  *claimLimiter
}

// NewKeyPackages returns the KeyPackage service of dir's provider. Bearer tokens are
// checked by disc; low-stock notices go to notify. log may be nil.
func NewKeyPackages(dir *Directory, store KeyPackageStore, disc *Discovery, notify Notifier, cfg KeyPackageConfig, log *slog.Logger) (*KeyPackages, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if dir == nil || store == nil || disc == nil || notify == nil {
		return nil, errors.New("directory: keypackages: directory, store, discovery and notifier are required")
	}
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &KeyPackages{dir: dir, store: store, disc: disc, notify: notify, cfg: cfg, log: log,
		uploads: NewTokenBuckets(cfg.UploadRate, cfg.UploadBurst, maxRateKeys, nil),
		limits:  newClaimLimiter(cfg.Claims, cfg.Clock)}, nil
}

// Upload validates and stores KeyPackages of an authenticated client, all or none. Each
// element is an MLSMessage carrying a KeyPackage or a bare KeyPackage. Each must pass
// RFC 9420 §10.1 at the service's clock (ErrInvalidKeyPackage wrapping the mls error),
// carry a BasicCredential whose identity is the client's user URI (ErrIdentityMismatch),
// and be new (ErrDuplicateKeyPackage); these come as an *UploadError naming the
// KeyPackage. A KeyPackage with the last_resort extension replaces the client's last
// resort of its suite. It returns the KeyPackageRefs in upload order. Each client's
// uploads are rate limited (ErrUploadRateLimited), and every check that needs no
// signature runs before the signatures are verified (precheck).
func (k *KeyPackages) Upload(ctx context.Context, c Client, kps [][]byte) ([][]byte, error) {
	switch {
	case c.Revoked():
		return nil, ErrBadToken
	case len(kps) == 0:
		return nil, fmt.Errorf("%w: empty upload", ErrMalformed)
	case len(kps) > k.cfg.MaxPerUpload:
		return nil, fmt.Errorf("%w: %d KeyPackages, limit %d per upload", protocol.ErrBundleTooLarge, len(kps), k.cfg.MaxPerUpload)
	}
	if err := k.allowUpload(c); err != nil {
		return nil, err
	}
	now := k.cfg.Clock()
	identity := k.dir.UserURI(c.UserName)
	items, err := k.precheck(ctx, c, kps, now)
	if err != nil {
		return nil, err
	}
	stored := make([]StoredKeyPackage, len(items))
	for i := range items {
		s, err := verifyUpload(items[i], identity, now)
		if k.cfg.Metrics.Verified != nil {
			k.cfg.Metrics.Verified(1)
		}
		if err != nil {
			return nil, &UploadError{Index: i, Err: err}
		}
		s.ClientID = c.ID
		stored[i] = s
	}
	if err := k.store.AddKeyPackages(ctx, c.ID, stored, k.cfg.MaxPerClient, k.cfg.LowThreshold, now); err != nil {
		return nil, fmt.Errorf("directory: keypackages: upload: %w", err)
	}
	refs := make([][]byte, len(stored))
	for i := range stored {
		refs[i] = stored[i].Ref
	}
	if k.cfg.Metrics.Uploaded != nil {
		k.cfg.Metrics.Uploaded(len(stored))
	}
	return refs, nil
}

// verifyUpload validates one decoded KeyPackage (RFC 9420 §10.1, signatures included)
// and its credential.
func verifyUpload(it uploadItem, identity string, now time.Time) (StoredKeyPackage, error) {
	kp := it.kp
	info, err := mls.ValidateKeyPackage(kp, now)
	if err != nil {
		return StoredKeyPackage{}, fmt.Errorf("%w: %w", ErrInvalidKeyPackage, err)
	}
	if kp.LeafNode.Credential.CredentialType != mls.CredentialTypeBasic {
		return StoredKeyPackage{}, fmt.Errorf("%w: credential type %s, want basic", ErrIdentityMismatch, kp.LeafNode.Credential.CredentialType)
	}
	if string(info.Identity) != identity {
		return StoredKeyPackage{}, fmt.Errorf("%w: identity %q, want %q", ErrIdentityMismatch, truncate(info.Identity, 80), identity)
	}
	leafKey := sha256.Sum256(kp.LeafNode.SignatureKey)
	return StoredKeyPackage{
		LeafKeyHash: leafKey[:],
		Ref:         info.Ref,
		Version:     kp.Version,
		CipherSuite: kp.CipherSuite,
		NotAfter:    info.NotAfter(),
		LastResort:  kp.Extensions.Has(ExtensionTypeLastResort),
		Data:        it.data,
	}, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// Count returns the client's stock of one cipher suite.
func (k *KeyPackages) Count(ctx context.Context, c Client, suite mls.CipherSuite) (protocol.KeyPackageStock, error) {
	stock, err := k.Stock(ctx, c)
	if err != nil {
		return protocol.KeyPackageStock{}, err
	}
	for _, s := range stock {
		if s.CipherSuite == suite {
			return s, nil
		}
	}
	return protocol.KeyPackageStock{CipherSuite: suite}, nil
}

// Stock returns the client's stock of every suite it has KeyPackages for.
func (k *KeyPackages) Stock(ctx context.Context, c Client) ([]protocol.KeyPackageStock, error) {
	s, err := k.store.KeyPackageStock(ctx, c.ID, k.cfg.Clock())
	if err != nil {
		return nil, fmt.Errorf("directory: keypackages: stock: %w", err)
	}
	return s, nil
}

// ServedKeyPackage returns what this provider recorded when it served the KeyPackage
// with this KeyPackageRef (ErrNotFound if it never did): the client, where a Welcome
// naming the ref goes, and the hash of its leaf's signature key, by which the hub finds
// the leaf in a new group's tree.
func (k *KeyPackages) ServedKeyPackage(ctx context.Context, ref []byte) (ServedKeyPackage, error) {
	return k.store.ServedKeyPackage(ctx, ref)
}

// Purge deletes what expired at now: KeyPackages (and those of revoked clients), served
// records of expired KeyPackages, and revocation-list entries of expired tokens. The
// server runs it periodically.
func (k *KeyPackages) Purge(ctx context.Context, now time.Time) (PurgeStats, error) {
	st, err := k.store.PurgeKeyPackages(ctx, now)
	if err != nil {
		return st, fmt.Errorf("directory: keypackages: purge: %w", err)
	}
	return st, nil
}

// ServeBundle decodes a KeyPackageRequestBundle, answers it with Fetch and encodes the
// KeyPackageResponseBundle. It fails only for a bundle that does not decode or that
// Fetch refuses (ErrMalformed, ErrBundleTooLarge, ErrBundleRepeats), or a result that
// cannot be encoded.
func (k *KeyPackages) ServeBundle(ctx context.Context, body []byte, now time.Time) ([]byte, error) {
	var b protocol.KeyPackageRequestBundle
	if err := b.UnmarshalBinary(body); err != nil {
		return nil, err
	}
	resp, err := k.Fetch(ctx, b, now)
	if err != nil {
		return nil, err
	}
	return resp.MarshalBinary()
}

// FetchOne answers a single KeyPackageRequest; a failure is a *FetchError.
func (k *KeyPackages) FetchOne(ctx context.Context, q protocol.KeyPackageRequest, now time.Time) (protocol.KeyPackageResponse, error) {
	resp, err := k.Fetch(ctx, protocol.KeyPackageRequestBundle{Requests: []protocol.KeyPackageRequest{q}}, now)
	if err != nil {
		return protocol.KeyPackageResponse{}, err
	}
	r := resp.Results[0]
	return r.Response, r.Err()
}

// Fetch answers each request of a bundle on its own: a KeyPackage, or a status saying
// why not (unknown user, bad or revoked token, no KeyPackage for the version and suite,
// rate limited). All claims of the bundle run in one store transaction. Only a bundle of
// the wrong size, or one that names a user more often than the user has clients
// (ErrBundleRepeats: nothing is claimed), is an error.
func (k *KeyPackages) Fetch(ctx context.Context, b protocol.KeyPackageRequestBundle, now time.Time) (protocol.KeyPackageResponseBundle, error) {
	if err := protocol.CheckBundleLen(len(b.Requests)); err != nil {
		return protocol.KeyPackageResponseBundle{}, err
	}
	results := make([]protocol.KeyPackageResult, len(b.Requests))
	pend := make([]pendingClaim, 0, len(b.Requests))
	p := preparer{k: k, now: now}
	for i := range b.Requests {
		pc, err := p.prepare(ctx, &b.Requests[i])
		if err != nil {
			results[i] = k.failed(err)
			continue
		}
		pc.index = i
		pend = append(pend, pc)
	}
	if err := k.checkRepeats(ctx, pend); err != nil {
		return protocol.KeyPackageResponseBundle{}, err
	}
	claims, index := k.limit(ctx, pend, results)
	lastResort := make([]bool, len(results))
	if len(claims) > 0 {
		k.claim(ctx, claims, index, results, lastResort, now)
	}
	if f := k.cfg.Metrics.Fetched; f != nil {
		for i := range results {
			f(results[i].Status, lastResort[i])
		}
	}
	return protocol.KeyPackageResponseBundle{Results: results}, nil
}

// claim runs the prepared claims in one store call and fills their results.
func (k *KeyPackages) claim(ctx context.Context, claims []ClaimRequest, index []int, results []protocol.KeyPackageResult, lastResort []bool, now time.Time) {
	got, err := k.store.ClaimKeyPackages(ctx, claims, k.cfg.LowThreshold, now)
	if err == nil && len(got) != len(claims) {
		err = fmt.Errorf("store answered %d claims of %d", len(got), len(claims))
	}
	if err != nil {
		k.log.Error("keypackage claim failed", "requests", len(claims), "err", err)
		for _, i := range index {
			results[i] = protocol.KeyPackageResult{Status: protocol.StatusInternal, Message: internalMessage}
		}
		return
	}
	for j, c := range got {
		i := index[j]
		if c.Err != nil {
			results[i] = k.failed(limitedResult(claims[j], c.Err))
			continue
		}
		results[i] = protocol.KeyPackageResult{Status: protocol.StatusOK, Response: protocol.KeyPackageResponse{KeyPackage: c.KeyPackage.Data}}
		lastResort[i] = c.KeyPackage.LastResort
		if c.Low {
			k.notifyLow(ctx, c)
		}
		if c.Exhausted {
			k.lastResortServed(ctx, c)
		}
	}
}

// preparer checks the requests of one bundle, looking each token and user up once.
type preparer struct {
	k      *KeyPackages
	now    time.Time
	tokens map[string]tokenLookup
	users  map[string]userLookup
}

type tokenLookup struct {
	t   DiscoveryToken
	err error
}

type userLookup struct {
	u   User
	err error
}

func (p *preparer) prepare(ctx context.Context, q *protocol.KeyPackageRequest) (pendingClaim, error) {
	if err := q.Check(); err != nil {
		return pendingClaim{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if p.tokens == nil {
		p.tokens = make(map[string]tokenLookup, 1)
		p.users = make(map[string]userLookup, 1)
	}
	// The token is checked before the user: without a valid token a requester learns
	// nothing about which users exist; with a per-requester token, nothing about users
	// other than its own (every other name is bad_token).
	tl, ok := p.tokens[q.BearerToken]
	if !ok {
		tl.t, tl.err = p.k.disc.token(ctx, q.BearerToken, p.now)
		p.tokens[q.BearerToken] = tl
	}
	if tl.err != nil {
		return pendingClaim{}, tl.err
	}
	ul, ok := p.users[q.UserID]
	if !ok {
		ul.u, ul.err = p.k.dir.resolveUser(ctx, q.UserID)
		p.users[q.UserID] = ul
	}
	if ul.err != nil {
		return pendingClaim{}, tl.t.unknownUser(ul.err)
	}
	if err := tl.t.validFor(ul.u.ID); err != nil {
		return pendingClaim{}, err
	}
	return pendingClaim{req: ClaimRequest{UserID: ul.u.ID, Version: q.Version, CipherSuite: q.CipherSuite},
		token: tl.t, user: ul.u}, nil
}

const internalMessage = "internal error; retry later"

// failed turns an error into a result. Messages are fixed texts: a requester learns the
// status, never internal details.
func (k *KeyPackages) failed(err error) protocol.KeyPackageResult {
	s := protocol.StatusOf(err)
	msg := internalMessage
	switch s {
	case protocol.StatusUnknownUser:
		msg = trimPkg(ErrUnknownUser)
	case protocol.StatusBadToken:
		msg = trimPkg(ErrTokenInvalid)
	case protocol.StatusRevokedToken:
		msg = trimPkg(ErrTokenRevoked)
	case protocol.StatusNoKeyPackage:
		msg = trimPkg(ErrNoKeyPackage)
	case protocol.StatusMalformed:
		msg = "malformed request"
	case protocol.StatusRateLimited:
		msg = "rate limited; retry later"
	default:
		k.log.Error("keypackage fetch failed", "err", err)
	}
	return protocol.KeyPackageResult{Status: s, Message: msg}
}

func trimPkg(err error) string { return strings.TrimPrefix(err.Error(), "directory: ") }

// notifyLow queues the key_packages_low notice of a claim. The store marked the crossing
// already; if the notice cannot be queued the mark is cleared so that a later claim
// tries again.
func (k *KeyPackages) notifyLow(ctx context.Context, c Claim) {
	ctx = context.WithoutCancel(ctx)
	kp := c.KeyPackage
	payload, _ := protocol.KeyPackagesLow{CipherSuite: kp.CipherSuite, Remaining: uint32(max(c.Remaining, 0))}.MarshalBinary()
	_, err := k.notify.Enqueue(ctx, mailbox.Target{ClientID: kp.ClientID}, uint16(protocol.KindKeyPackagesLow), payload)
	if err == nil {
		if k.cfg.Metrics.LowStockNotices != nil {
			k.cfg.Metrics.LowStockNotices()
		}
		return
	}
	k.log.Warn("key_packages_low notice not queued", "client_id", kp.ClientID, "suite", uint16(kp.CipherSuite), "err", err)
	if cerr := k.store.ClearLowStock(ctx, kp.ClientID, kp.CipherSuite); cerr != nil {
		k.log.Error("low-stock mark not cleared", "client_id", kp.ClientID, "err", cerr)
	}
}
