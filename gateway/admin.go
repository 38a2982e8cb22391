package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/protocol"
)

// Problem is an RFC 9457 problem detail, the body of every HTTP error.
type Problem struct {
	Type   string `json:"type,omitempty"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

func (p *Problem) Error() string { return p.Title + ": " + p.Detail }

func problem(status int, title, detail string) error {
	return &Problem{Title: title, Status: status, Detail: detail}
}

func problemErrorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var p *Problem
	var he *echo.HTTPError
	switch {
	case errors.As(err, &p):
	case errors.As(err, &he):
		p = &Problem{Title: http.StatusText(he.Code), Status: he.Code}
		if m, ok := he.Message.(string); ok {
			p.Detail = m
		}
	default:
		c.Logger().Error(err)
		p = &Problem{Title: "internal error", Status: http.StatusInternalServerError}
	}
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	c.Response().Header().Set("X-Content-Type-Options", "nosniff")
	c.JSON(p.Status, p)
}

// domainProblem maps directory and mailbox errors to HTTP problems.
func domainProblem(err error) error {
	switch {
	case errors.Is(err, directory.ErrNotFound):
		return problem(http.StatusNotFound, "not found", err.Error())
	case errors.Is(err, directory.ErrExists):
		return problem(http.StatusConflict, "already exists", err.Error())
	case errors.Is(err, directory.ErrInvalidName), errors.Is(err, protocol.ErrBadURI),
		errors.Is(err, mailbox.ErrTarget), errors.Is(err, mailbox.ErrTooLarge):
		return problem(http.StatusBadRequest, "invalid request", err.Error())
	case errors.Is(err, mailbox.ErrFull):
		// Nothing was written: retry once the client has acknowledged entries.
		return problem(http.StatusInsufficientStorage, "mailbox full", err.Error())
	}
	return err
}

func (s *Server) adminAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		token, ok := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
		if !ok {
			return problem(http.StatusUnauthorized, "unauthorized", "an admin bearer token is required")
		}
		t, valid, err := s.deps.Directory.AdminTokenFor(c.Request().Context(), token)
		if err != nil {
			return err
		}
		if !valid {
			return problem(http.StatusUnauthorized, "unauthorized", "unknown, revoked or expired admin token")
		}
		if t.ReadOnly && c.Request().Method != http.MethodGet && c.Request().Method != http.MethodHead {
			return problem(http.StatusForbidden, "forbidden", "a read-only admin token changes nothing")
		}
		c.Set(adminActorKey, fmt.Sprintf("token:%s#%d", t.Name, t.ID))
		return next(c)
	}
}

const adminActorKey = "mimids.admin"

// audit records a change made through the admin API.
func (s *Server) audit(c echo.Context, action, format string, args ...any) {
	if s.deps.Audit != nil {
		actor, _ := c.Get(adminActorKey).(string)
		s.deps.Audit(c.Request().Context(), "api "+actor, action, fmt.Sprintf(format, args...))
	}
}

func (s *Server) adminRoutes(g *echo.Group) {
	g.GET("/users", s.listUsers)
	g.POST("/users", s.addUser)
	g.DELETE("/users/:user", s.removeUser)
	g.GET("/users/:user/clients", s.listClients)
	g.POST("/clients", s.addClient)
	g.DELETE("/users/:user/clients/:client", s.revokeClient)
	g.POST("/notices", s.postNotice)
	g.POST("/debug/gc", func(c echo.Context) error {
		runtime.GC()
		debug.FreeOSMemory()
		s.audit(c, "debug.gc", "")
		return c.JSON(http.StatusOK, map[string]any{"sockets": s.Connected()})
	})
}

type userJSON struct {
	Name      string `json:"name"`
	UserID    string `json:"user_id"`
	CreatedAt string `json:"created_at"`
}

type clientJSON struct {
	UserID    string `json:"user_id"`
	ClientID  string `json:"client_id"`
	Token     string `json:"token,omitempty"`
	CreatedAt string `json:"created_at"`
	RevokedAt string `json:"revoked_at,omitempty"`
	Connected int    `json:"connected"`
}

const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func (s *Server) clientJSON(cl directory.Client) clientJSON {
	out := clientJSON{UserID: s.deps.Directory.UserURI(cl.UserName), ClientID: s.deps.Directory.ClientURI(cl),
		CreatedAt: cl.CreatedAt.Format(timeFormat)}
	if cl.Revoked() {
		out.RevokedAt = cl.RevokedAt.Format(timeFormat)
	}
	s.mu.Lock()
	if cs := s.byClient[cl.ID]; cs != nil {
		out.Connected = len(cs.sessions)
	}
	s.mu.Unlock()
	return out
}

func (s *Server) listUsers(c echo.Context) error {
	us, err := s.deps.Directory.ListUsers(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]userJSON, 0, len(us))
	for _, u := range us {
		out = append(out, userJSON{Name: u.Name, UserID: s.deps.Directory.UserURI(u.Name), CreatedAt: u.CreatedAt.Format(timeFormat)})
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) addUser(c echo.Context) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := s.bindJSON(c, &req, `{"name": ...}`); err != nil {
		return err
	}
	u, err := s.deps.Directory.AddUser(c.Request().Context(), req.Name)
	if err != nil {
		return domainProblem(err)
	}
	s.audit(c, "user.add", "user %s", u.Name)
	return c.JSON(http.StatusCreated, userJSON{Name: u.Name, UserID: s.deps.Directory.UserURI(u.Name), CreatedAt: u.CreatedAt.Format(timeFormat)})
}

func (s *Server) removeUser(c echo.Context) error {
	cs, err := s.deps.Directory.RemoveUser(c.Request().Context(), c.Param("user"))
	if err != nil {
		return domainProblem(err)
	}
	for _, cl := range cs {
		s.Revoke(cl.ID, "user removed")
	}
	s.audit(c, "user.remove", "user %s (%d clients)", c.Param("user"), len(cs))
	return c.JSON(http.StatusOK, map[string]any{"removed_clients": len(cs)})
}

func (s *Server) listClients(c echo.Context) error {
	cs, err := s.deps.Directory.ListClients(c.Request().Context(), c.Param("user"))
	if err != nil {
		return domainProblem(err)
	}
	out := make([]clientJSON, 0, len(cs))
	for _, cl := range cs {
		out = append(out, s.clientJSON(cl))
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) addClient(c echo.Context) error {
	var req struct {
		User       string `json:"user"`
		Client     string `json:"client"`
		CreateUser bool   `json:"create_user"`
	}
	if err := s.bindJSON(c, &req, `{"user", "client", "create_user"}`); err != nil {
		return err
	}
	cl, token, err := s.deps.Directory.AddClient(c.Request().Context(), req.User, req.Client, req.CreateUser)
	if err != nil {
		return domainProblem(err)
	}
	s.audit(c, "client.add", "client %s", s.deps.Directory.ClientURI(cl))
	out := s.clientJSON(cl)
	out.Token = token
	return c.JSON(http.StatusCreated, out)
}

func (s *Server) revokeClient(c echo.Context) error {
	cl, err := s.deps.Directory.RevokeClient(c.Request().Context(), c.Param("user"), c.Param("client"))
	if err != nil {
		return domainProblem(err)
	}
	n := s.Revoke(cl.ID, "token revoked")
	s.audit(c, "client.revoke", "client %s (%d sockets closed)", s.deps.Directory.ClientURI(cl), n)
	out := s.clientJSON(cl)
	out.Connected = 0
	return c.JSON(http.StatusOK, map[string]any{"client": out, "closed_sockets": n})
}

// NoticeRequest is the body of POST /admin/v1/notices.
type NoticeRequest struct {
	To struct {
		Client string `json:"client,omitempty"`
		User   string `json:"user,omitempty"`
		All    bool   `json:"all,omitempty"`
	} `json:"to"`
	Text string `json:"text"`
}

func (s *Server) postNotice(c echo.Context) error {
	var req NoticeRequest
	if err := s.bindJSON(c, &req, `{"to": {...}, "text": ...}`); err != nil {
		return err
	}
	ctx := c.Request().Context()
	t, err := ResolveTarget(ctx, s.deps.Directory, req.To.Client, req.To.User, req.To.All)
	if err != nil {
		return domainProblem(err)
	}
	payload, _ := protocol.Notice{Text: req.Text}.MarshalBinary()
	n, err := s.deps.Mailbox.Enqueue(ctx, t, uint16(protocol.KindNotice), payload)
	if err != nil {
		return domainProblem(err)
	}
	s.audit(c, "notice.send", "%d entries", n)
	return c.JSON(http.StatusAccepted, map[string]any{"enqueued": n})
}
