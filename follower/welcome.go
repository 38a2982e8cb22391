package follower

import (
	"context"

	"fmt"
	"log/slog"

	"github.com/mimids/mimids/protocol"
)

// ServedRefs says which of this provider's clients a KeyPackageRef belongs to: the
// KeyPackage store records it when it serves a KeyPackage (the hub's WelcomeRouter
// answers the same question for local Welcomes).
type ServedRefs interface {
	// ServedClient returns the client that was served the KeyPackage with ref; ok
	// is false for a ref this provider never served.
	ServedClient(ctx context.Context, ref []byte) (clientID int64, ok bool, err error)
}

// Mailbox is the durable mailbox of this provider's clients.
type Mailbox interface {
	// Deliver enqueues one entry for a client; an error carrying
	// protocol.CodeMailboxFull means the client's mailbox is at its quota.
	Deliver(ctx context.Context, clientID int64, kind uint16, payload []byte) error
}

// ErrNoServedRef refuses a Welcome offer (or Welcome) that names no KeyPackage this
// provider served: a hub can get a Welcome delivered only to the clients it was
// for, by this provider's own records.
var ErrNoServedRef = protocol.NewError(protocol.CodeNotFound, "follower: no KeyPackage of the Welcome was served by this provider")

// ErrBadWelcome refuses an envelope whose body does not parse.
var ErrBadWelcome = protocol.NewError(protocol.CodeMalformed, "follower: malformed Welcome envelope")

// Welcomes takes the Welcomes other providers' hubs send for this provider's
// clients (docs/protocol.md §5.9). Its methods are the handlers of the
// welcome_init and welcome envelopes; the caller gives the sender's proven domain.
type Welcomes struct {
	// Static after NewWelcomes.
	refs    ServedRefs
	mailbox Mailbox
	routes  Routes // nil: nothing learned
	log     *slog.Logger
}

// NewWelcomes returns the Welcome handlers over the served-ref records and the
// mailbox. A delivered Welcome teaches routes (if not nil) that its hub hosts the
// group, and a group of each client it went to (§5.10).
func NewWelcomes(refs ServedRefs, mb Mailbox, routes Routes, log *slog.Logger) *Welcomes {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Welcomes{refs: refs, mailbox: mb, routes: routes, log: log}
}

// Init answers a WelcomeInit from hub peer: the offered refs this provider served,
// each to one of its clients, in the offer's order. It refuses the others (logged once per offer), and
// the whole offer, with ErrNoServedRef, when none is left. It only reads.
func (w *Welcomes) Init(ctx context.Context, peer string, body []byte) ([]byte, error) {
	var q protocol.WelcomeInit
	if err := q.UnmarshalBinary(body); err != nil {
		return nil, fmt.Errorf("%w: welcome_init: %v", ErrBadWelcome, err)
	}
	byClient, refused, err := w.served(ctx, q.Request.KeyPackageRefs)
	if err != nil {
		return nil, err
	}
	w.logRefused(peer, "welcome_init", q.WelcomeID, refused, len(q.Request.KeyPackageRefs))
	if len(byClient) == 0 {
		return nil, ErrNoServedRef
	}
	ok := map[string]bool{}
	for _, cr := range byClient {
		for _, ref := range cr.refs {
			ok[string(ref)] = true
		}
	}
	var a protocol.WelcomeInitAnswer
	for _, ref := range q.Request.KeyPackageRefs {
		if ok[string(ref)] {
			a.Accepted = append(a.Accepted, ref)
			delete(ok, string(ref))
		}
	}
	return a.MarshalBinary()
}

// Deliver puts a Welcome from hub peer into the mailbox of each client it names by
// a ref this provider served, with that client's refs (kind welcome, payload
// WelcomeDelivery, as for a Welcome of a local group). It checks the refs again:
// refs not served are refused and logged, as in Init. A full mailbox skips that
// client (logged); a store failure is returned uncoded, so the envelope is applied
// later. Run it inside the transaction that records the envelope's answer, so the
// mailbox entries and the record commit together.
func (w *Welcomes) Deliver(ctx context.Context, peer string, body []byte) ([]byte, error) {
	var m protocol.WelcomePush
	if err := m.UnmarshalBinary(body); err != nil {
		return nil, fmt.Errorf("%w: welcome: %v", ErrBadWelcome, err)
	}
	refs := m.Delivery.KeyPackageRefs
	byClient, refused, err := w.served(ctx, refs)
	if err != nil {
		return nil, err
	}
	w.logRefused(peer, "welcome", m.WelcomeID, refused, len(refs))
	if len(byClient) == 0 {
		return nil, ErrNoServedRef
	}
	var a protocol.WelcomePushAnswer
	full := 0
	for _, cr := range byClient {
		d := protocol.WelcomeDelivery{GroupID: m.Delivery.GroupID, KeyPackageRefs: cr.refs, Welcome: m.Delivery.Welcome}
		payload, err := d.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("follower: welcome: %w", err)
		}
		err = w.mailbox.Deliver(ctx, cr.client, uint16(protocol.KindWelcome), payload)
		if code, ok := protocol.CodeOf(err); ok && code == protocol.CodeMailboxFull {
			full++
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("follower: welcome for client %d: %w", cr.client, err)
		}
		if err := w.learn(ctx, peer, m.Delivery.GroupID, cr.client); err != nil {
			return nil, err
		}
		a.Delivered++
	}
	if full > 0 {
		w.log.Warn("follower: Welcome not delivered to full mailboxes", "hub", peer, "welcome_id", m.WelcomeID,
			"clients", full, "of", len(byClient))
	}
	return a.MarshalBinary()
}

// learn records hub as the hub of group and of a group of client, in the
// transaction of the delivery.
func (w *Welcomes) learn(ctx context.Context, hub string, group []byte, client int64) error {
	if w.routes == nil {
		return nil
	}
	if err := w.routes.SetGroupHub(ctx, group, hub); err != nil {
		return fmt.Errorf("follower: welcome: %w", err)
	}
	if err := w.routes.AddClientHub(ctx, client, hub); err != nil {
		return fmt.Errorf("follower: welcome: %w", err)
	}
	return nil
}

type clientRefs struct {
	client int64
	refs   [][]byte
}

// served groups refs by the client each was served to, in first-seen order, and
// returns those this provider never served (or that repeat).
func (w *Welcomes) served(ctx context.Context, refs [][]byte) ([]clientRefs, [][]byte, error) {
	var out []clientRefs
	var refused [][]byte
	idx := map[int64]int{}
	seen := map[string]bool{}
	for _, ref := range refs {
		if seen[string(ref)] {
			refused = append(refused, ref)
			continue
		}
		seen[string(ref)] = true
		client, ok, err := w.refs.ServedClient(ctx, ref)
		if err != nil {
			return nil, nil, fmt.Errorf("follower: served ref: %w", err)
		}
		if !ok {
			refused = append(refused, ref)
			continue
		}
		j, have := idx[client]
		if !have {
			j = len(out)
			idx[client] = j
			out = append(out, clientRefs{client: client})
		}
		out[j].refs = append(out[j].refs, ref)
	}
	return out, refused, nil
}

func (w *Welcomes) logRefused(peer, what string, id uint64, refused [][]byte, of int) {
	if len(refused) == 0 {
		return
	}
	w.log.Warn("follower: hub named KeyPackages this provider never served; refused", "hub", peer, "envelope", what,
		"welcome_id", id, "refs", len(refused), "of", of, "first_ref", fmt.Sprintf("%x", refused[0]))
}
