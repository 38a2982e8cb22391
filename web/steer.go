package web

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/ohttp"
	"github.com/mimids/mimids/protocol"
)

// intParam reads a positive query number; absent is 0.
func intParam(r *http.Request, name string) (int64, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil && n > 0
}

type groupsData struct {
	Groups []hub.Group
	Next   string
}

func (d *Dashboard) groupsPage(w http.ResponseWriter, r *http.Request, s *session) {
	after, err := hex.DecodeString(r.URL.Query().Get("after"))
	if err != nil || len(after) > 256 {
		d.fail(w, r, s, http.StatusBadRequest, "Bad position", "after must be a group ID in hex.")
		return
	}
	gs, err := d.deps.Groups.Groups(r.Context(), after, pageSize+1)
	if err != nil {
		d.internal(w, r, s, err)
		return
	}
	data := groupsData{Groups: gs}
	if len(gs) > pageSize {
		data.Groups = gs[:pageSize]
		data.Next = hex.EncodeToString(gs[pageSize-1].GroupID)
	}
	d.render(w, r, s, http.StatusOK, "groups", "Groups", data)
}

// node is one partition in the tree of a group's forks.
type node struct {
	hub.PartitionInfo
	View     hub.PartitionView
	ViewErr  string
	Children []*node
	Fork     bool // its parent has more than one child
}

// maxViews bounds the partitions whose state one group page loads (the newest).
const maxViews = 64

type groupData struct {
	ID    string
	Roots []*node
	Count int
}

// tree arranges partitions (in opening order) by parent, with the views of the
// newest maxViews.
func (d *Dashboard) tree(ctx context.Context, ps []hub.PartitionInfo) []*node {
	by := map[string]*node{}
	var roots []*node
	for i, p := range ps {
		n := &node{PartitionInfo: p}
		if i >= len(ps)-maxViews {
			var err error
			if n.View, err = d.deps.Groups.View(ctx, p.Masked); err != nil {
				n.ViewErr = err.Error()
			}
		}
		by[string(p.Masked)] = n
		if parent := by[string(p.Parent)]; p.Parent != nil && parent != nil {
			parent.Children = append(parent.Children, n)
		} else {
			roots = append(roots, n)
		}
	}
	for _, n := range by {
		if len(n.Children) > 1 {
			for _, c := range n.Children {
				c.Fork = true
			}
		}
	}
	return roots
}

func (d *Dashboard) groupPage(w http.ResponseWriter, r *http.Request, s *session) {
	id, err := hex.DecodeString(r.PathValue("group"))
	if err != nil || len(id) == 0 {
		d.fail(w, r, s, http.StatusBadRequest, "Bad group", "A group ID is hex.")
		return
	}
	ps, err := d.deps.Groups.Partitions(r.Context(), id)
	if errors.Is(err, hub.ErrUnknownGroup) {
		d.fail(w, r, s, http.StatusNotFound, "No such group", "This provider hosts no group "+r.PathValue("group")+".")
		return
	}
	if err != nil {
		d.internal(w, r, s, err)
		return
	}
	d.render(w, r, s, http.StatusOK, "group", "Group", groupData{ID: hex.EncodeToString(id), Roots: d.tree(r.Context(), ps), Count: len(ps)})
}

func (d *Dashboard) terminate(w http.ResponseWriter, r *http.Request, s *session) {
	id, err1 := hex.DecodeString(r.PathValue("group"))
	masked, err2 := hex.DecodeString(r.PostForm.Get("partition"))
	if err1 != nil || err2 != nil || len(masked) == 0 {
		d.fail(w, r, s, http.StatusBadRequest, "Bad partition", "The group and partition are hex.")
		return
	}
	if r.PostForm.Get("confirm") != "yes" {
		d.fail(w, r, s, http.StatusBadRequest, "Not confirmed", "Tick the confirmation box to terminate a partition: nothing was changed.")
		return
	}
	if err := d.deps.Groups.Terminate(r.Context(), id, masked); err != nil {
		if errors.Is(err, hub.ErrUnknownPartition) || errors.Is(err, hub.ErrWrongPartition) {
			d.fail(w, r, s, http.StatusNotFound, "No such partition", err.Error())
			return
		}
		d.internal(w, r, s, err)
		return
	}
	d.audit(r, s, "partition.terminate", "group %x partition %x", id, masked)
	d.done(w, r, s, "/dashboard/groups/"+hex.EncodeToString(id), "Terminated partition "+hex.EncodeToString(masked)[:16]+"….")
}

func (d *Dashboard) peersPage(w http.ResponseWriter, r *http.Request, s *session) {
	var ps []Peer
	if d.deps.Peers != nil {
		var err error
		if ps, err = d.deps.Peers.Peers(r.Context()); err != nil {
			d.internal(w, r, s, err)
			return
		}
	}
	d.render(w, r, s, http.StatusOK, "peers", "Federation peers", struct {
		Enabled bool
		Peers   []Peer
	}{d.deps.Peers != nil, ps})
}

func (d *Dashboard) addPeer(w http.ResponseWriter, r *http.Request, s *session) {
	f := r.PostForm
	domain, u, pin, ca := strings.TrimSpace(f.Get("domain")), strings.TrimSpace(f.Get("url")), strings.TrimSpace(f.Get("pin")), f.Get("ca")
	if d.deps.Peers == nil {
		d.fail(w, r, s, http.StatusBadRequest, "No federation", "Federation is not configured on this provider.")
		return
	}
	if (pin == "") == (strings.TrimSpace(ca) == "") {
		d.fail(w, r, s, http.StatusBadRequest, "Invalid peer", "Give exactly one of a certificate pin and a CA bundle. Nothing was changed.")
		return
	}
	if err := d.deps.Peers.AddPeer(r.Context(), domain, u, pin, ca); err != nil {
		if errors.Is(err, ErrBadPeer) {
			d.fail(w, r, s, http.StatusBadRequest, "Invalid peer", err.Error()+". Nothing was changed.")
			return
		}
		d.internal(w, r, s, err)
		return
	}
	d.audit(r, s, "peer.add", "peer %s at %s", domain, u)
	d.done(w, r, s, "/dashboard/peers", "Added peer "+domain+"; the link starts within the peer refresh interval.")
}

func (d *Dashboard) removePeer(w http.ResponseWriter, r *http.Request, s *session) {
	domain := strings.TrimSpace(r.PostForm.Get("domain"))
	if r.PostForm.Get("confirm") != "yes" {
		d.fail(w, r, s, http.StatusBadRequest, "Not confirmed", "Tick the confirmation box to remove a peer: nothing was changed.")
		return
	}
	if d.deps.Peers == nil {
		d.fail(w, r, s, http.StatusBadRequest, "No federation", "Federation is not configured on this provider.")
		return
	}
	ok, err := d.deps.Peers.RemovePeer(r.Context(), domain)
	if err != nil {
		d.internal(w, r, s, err)
		return
	}
	if !ok {
		d.fail(w, r, s, http.StatusNotFound, "No such peer", "No peer "+domain+" is on the allow-list.")
		return
	}
	d.audit(r, s, "peer.remove", "peer %s", domain)
	d.done(w, r, s, "/dashboard/peers", "Removed peer "+domain+".")
}

type policyData struct {
	Bans    []directory.Ban
	Reports []directory.StoredReport
	Limits  []Limit
}

func (d *Dashboard) policyPage(w http.ResponseWriter, r *http.Request, s *session) {
	bans, err := d.deps.Policy.ListBans(r.Context())
	if err != nil {
		d.internal(w, r, s, err)
		return
	}
	reports, err := d.deps.Policy.ListReports(r.Context(), 100)
	if err != nil {
		d.internal(w, r, s, err)
		return
	}
	d.render(w, r, s, http.StatusOK, "policy", "Policy", policyData{Bans: bans, Reports: reports, Limits: d.cfg.Limits})
}

// banTarget checks a user URI typed into a form.
func banTarget(v string) (string, error) {
	v = strings.TrimSpace(v)
	if _, _, _, err := protocol.ParseURI(v); err != nil {
		return "", err
	}
	return protocol.UserOf(v), nil
}

func (d *Dashboard) ban(w http.ResponseWriter, r *http.Request, s *session) {
	user, err := banTarget(r.PostForm.Get("user"))
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if err != nil || len(reason) > 500 {
		d.fail(w, r, s, http.StatusBadRequest, "Invalid ban", "Give a user URI such as mimi://example.com/u/alice, and a reason of at most 500 characters. Nothing was changed.")
		return
	}
	if err := d.deps.Policy.Ban(r.Context(), user, reason); err != nil {
		d.domainFail(w, r, s, err)
		return
	}
	d.audit(r, s, "ban.add", "user %s reason %q", user, reason)
	d.done(w, r, s, "/dashboard/policy", "Banned "+user+".")
}

func (d *Dashboard) unban(w http.ResponseWriter, r *http.Request, s *session) {
	user := strings.TrimSpace(r.PostForm.Get("user"))
	ok, err := d.deps.Policy.Unban(r.Context(), user)
	if err != nil {
		d.domainFail(w, r, s, err)
		return
	}
	if !ok {
		d.fail(w, r, s, http.StatusNotFound, "Not banned", user+" is not banned.")
		return
	}
	d.audit(r, s, "ban.remove", "user %s", user)
	d.done(w, r, s, "/dashboard/policy", "Lifted the ban on "+user+".")
}

type keysData struct {
	Keys   []ohttp.KeyState
	Tokens directory.TokenList
}

func (d *Dashboard) keysPage(w http.ResponseWriter, r *http.Request, s *session) {
	tl, err := d.deps.Keys.DiscoveryTokens(r.Context())
	if err != nil {
		d.internal(w, r, s, err)
		return
	}
	d.render(w, r, s, http.StatusOK, "keys", "Discovery tokens and OHTTP keys", keysData{Keys: d.deps.Keys.OHTTPKeys(), Tokens: tl})
}

func (d *Dashboard) rotateOHTTP(w http.ResponseWriter, r *http.Request, s *session) {
	id, err := d.deps.Keys.RotateOHTTPKey(r.Context())
	if err != nil {
		d.internal(w, r, s, err)
		return
	}
	d.audit(r, s, "ohttp.rotate", "new current key %d", id)
	d.done(w, r, s, "/dashboard/keys", "Key "+strconv.Itoa(int(id))+" is the new current OHTTP key.")
}

func (d *Dashboard) rotateDiscovery(w http.ResponseWriter, r *http.Request, s *session) {
	if err := d.deps.Keys.RotateDiscoverySecret(r.Context()); err != nil {
		d.internal(w, r, s, err)
		return
	}
	d.audit(r, s, "discovery.rotate", "new discovery secret")
	d.done(w, r, s, "/dashboard/keys", "A new discovery secret signs tokens from now on.")
}

func (d *Dashboard) revokeDiscovery(w http.ResponseWriter, r *http.Request, s *session) {
	id, err := strconv.ParseInt(strings.TrimSpace(r.PostForm.Get("id")), 10, 64)
	if err != nil || id <= 0 {
		d.fail(w, r, s, http.StatusBadRequest, "Invalid token ID", "A token ID is a positive number (as the logs name it). Nothing was changed.")
		return
	}
	if err := d.deps.Keys.RevokeDiscoveryToken(r.Context(), id); err != nil {
		d.domainFail(w, r, s, err)
		return
	}
	d.audit(r, s, "discovery.revoke", "token %d", id)
	d.done(w, r, s, "/dashboard/keys", "Revoked discovery token "+strconv.FormatInt(id, 10)+".")
}
