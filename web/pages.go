package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/protocol"
)

const pageSize = 50

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request, s *session) {
	d.render(w, r, s, http.StatusOK, "overview", "Overview", d.live.latest())
}

type usersData struct {
	Query string
	Users []directory.User
	Next  string // the after= of the next page, "" on the last
}

func (d *Dashboard) usersPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	after := r.URL.Query().Get("after")
	if len(q) > 64 || len(after) > 64 {
		d.fail(w, r, s, http.StatusBadRequest, "Bad search", "A search or position has at most 64 characters.")
		return
	}
	us, err := d.deps.Admins.SearchUsers(r.Context(), strings.ToLower(q), after, pageSize+1)
	if err != nil {
		d.internal(w, r, s, err)
		return
	}
	data := usersData{Query: q, Users: us}
	if len(us) > pageSize {
		data.Users = us[:pageSize]
		data.Next = us[pageSize-1].Name
	}
	d.render(w, r, s, http.StatusOK, "users", "Users and clients", data)
}

type clientRow struct {
	directory.Client
	URI      string
	Sockets  int
	LastSeen time.Time
	Stock    []protocol.KeyPackageStock
	Low      bool
	StockErr string
}

type userData struct {
	Name, URI string
	Clients   []clientRow
	Token     string // a new client's token, shown once
	TokenFor  string
}

func (d *Dashboard) userPage(w http.ResponseWriter, r *http.Request, s *session) {
	d.renderUser(w, r, s, r.PathValue("user"), "", "")
}

func (d *Dashboard) renderUser(w http.ResponseWriter, r *http.Request, s *session, name, token, tokenFor string) {
	cs, err := d.deps.Users.ListClients(r.Context(), name)
	if errors.Is(err, directory.ErrNotFound) {
		d.fail(w, r, s, http.StatusNotFound, "No such user", "There is no user "+name+".")
		return
	}
	if err != nil {
		d.internal(w, r, s, err)
		return
	}
	data := userData{Name: name, URI: d.deps.Users.UserURI(name), Token: token, TokenFor: tokenFor}
	for _, c := range cs {
		row := clientRow{Client: c, URI: d.deps.Users.ClientURI(c)}
		row.Sockets, row.LastSeen = d.deps.Sockets.ClientSockets(c.ID)
		if d.deps.KeyPackages != nil && !c.Revoked() {
			if row.Stock, err = d.deps.KeyPackages.Stock(r.Context(), c); err != nil {
				row.StockErr = err.Error()
			}
			row.Low = len(row.Stock) == 0
			for _, st := range row.Stock {
				row.Low = row.Low || st.Available < d.cfg.LowStock
			}
		}
		data.Clients = append(data.Clients, row)
	}
	d.render(w, r, s, http.StatusOK, "user", "User "+name, data)
}

func (d *Dashboard) addUser(w http.ResponseWriter, r *http.Request, s *session) {
	name := strings.TrimSpace(r.PostForm.Get("name"))
	u, err := d.deps.Users.AddUser(r.Context(), name)
	if err != nil {
		d.domainFail(w, r, s, err)
		return
	}
	d.audit(r, s, "user.add", "user %s", u.Name)
	d.done(w, r, s, "/dashboard/users/"+url.PathEscape(u.Name), "Created user "+u.Name+".")
}

func (d *Dashboard) addClient(w http.ResponseWriter, r *http.Request, s *session) {
	user, client := strings.TrimSpace(r.PostForm.Get("user")), strings.TrimSpace(r.PostForm.Get("client"))
	c, token, err := d.deps.Users.AddClient(r.Context(), user, client, r.PostForm.Get("create_user") == "on")
	if err != nil {
		d.domainFail(w, r, s, err)
		return
	}
	d.audit(r, s, "client.add", "client %s", d.deps.Users.ClientURI(c))
	d.renderUser(w, r, s, c.UserName, token, c.Name)
}

func (d *Dashboard) revokeClient(w http.ResponseWriter, r *http.Request, s *session) {
	c, err := d.deps.Users.RevokeClient(r.Context(), r.PathValue("user"), r.PathValue("client"))
	if err != nil {
		d.domainFail(w, r, s, err)
		return
	}
	n := d.deps.Sockets.Revoke(c.ID, "token revoked")
	d.audit(r, s, "client.revoke", "client %s (%d sockets closed)", d.deps.Users.ClientURI(c), n)
	d.done(w, r, s, "/dashboard/users/"+url.PathEscape(c.UserName), "Revoked the token of "+c.Name+".")
}

type auditData struct {
	Entries []directory.AuditEntry
	Next    int64
}

func (d *Dashboard) auditPage(w http.ResponseWriter, r *http.Request, s *session) {
	before, ok := intParam(r, "before")
	if !ok {
		d.fail(w, r, s, http.StatusBadRequest, "Bad position", "before must be a positive number.")
		return
	}
	es, err := d.deps.Admins.Audit(r.Context(), before, pageSize+1)
	if err != nil {
		d.internal(w, r, s, err)
		return
	}
	data := auditData{Entries: es}
	if len(es) > pageSize {
		data.Entries = es[:pageSize]
		data.Next = es[pageSize-1].ID
	}
	d.render(w, r, s, http.StatusOK, "audit", "Audit log", data)
}

// domainFail answers a domain error: bad input as 400 with its message.
func (d *Dashboard) domainFail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	switch {
	case errors.Is(err, directory.ErrNotFound):
		d.fail(w, r, s, http.StatusNotFound, "Not found", err.Error())
	case errors.Is(err, directory.ErrExists):
		d.fail(w, r, s, http.StatusConflict, "Already exists", err.Error())
	case errors.Is(err, directory.ErrInvalidName), errors.Is(err, protocol.ErrBadURI):
		d.fail(w, r, s, http.StatusBadRequest, "Invalid input", err.Error())
	default:
		d.internal(w, r, s, err)
	}
}

func (d *Dashboard) internal(w http.ResponseWriter, r *http.Request, s *session, err error) {
	d.log.Error("web: request", "path", r.URL.Path, "err", err)
	d.fail(w, r, s, http.StatusInternalServerError, "Internal error", "The request failed; the log has the details.")
}
