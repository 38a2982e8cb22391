// Package gateway is the client-facing edge of a provider: the echo application with
// health, readiness and metrics routes, the admin HTTP API, the Oblivious HTTP gateway
// and relay, and the client WebSocket at /v1/socket (frames in package protocol,
// prose in docs/protocol.md), whose group methods a Router sends to the hub (groups
// hosted here) or the follower (groups hosted elsewhere). Each socket is one
// session on a gateway/conn connection (a reader goroutine, and a writer goroutine
// while something is queued); mailbox entries reach it from the durable per-client
// mailbox.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/gateway/conn"
	"github.com/mimids/mimids/protocol"
)

// Directory is what the gateway needs from the user directory.
type Directory interface {
	Domain() string
	Authenticate(ctx context.Context, token []byte) (directory.Client, error)
	AdminTokenFor(ctx context.Context, token string) (directory.AdminToken, bool, error)
	UserURI(user string) string
	ClientURI(c directory.Client) string
	AddUser(ctx context.Context, name string) (directory.User, error)
	RemoveUser(ctx context.Context, name string) ([]directory.Client, error)
	AddClient(ctx context.Context, user, client string, createUser bool) (directory.Client, string, error)
	RevokeClient(ctx context.Context, user, client string) (directory.Client, error)
	User(ctx context.Context, name string) (directory.User, error)
	ListUsers(ctx context.Context) ([]directory.User, error)
	ListClients(ctx context.Context, user string) ([]directory.Client, error)
	Changes(ctx context.Context, after int64, limit int) ([]directory.Change, error)
}

// Mailbox is what the gateway needs from the durable mailbox.
type Mailbox interface {
	Enqueue(ctx context.Context, t mailbox.Target, kind uint16, payload []byte) (int, error)
	Subscribe(clientID int64, s mailbox.Sink) (cancel func())
	Poke(clientID int64)
	Fetch(ctx context.Context, clientID int64, after uint64, limit int) ([]mailbox.Entry, error)
	Ack(ctx context.Context, clientID int64, seq uint64) error
	Status(ctx context.Context, clientID int64) (mailbox.Status, error)
}

// Handler answers one client request. It returns the response body, or an error: a
// *protocol.Error is sent as is, anything else as an internal error.
type Handler func(ctx context.Context, c *Caller, body []byte) ([]byte, error)

// Caller identifies the authenticated client behind a request.
type Caller struct {
	Client    directory.Client
	ClientURI string
	UserURI   string
}

// Deps are the parts the gateway serves.
type Deps struct {
	Directory Directory
	Mailbox   Mailbox
	// Ready reports the state of the parts the provider needs (the store's reads,
	// writes, disk); /readyz answers 503 naming those whose Err is set.
	Ready func(ctx context.Context) []ReadyCheck
	// Incarnation names the store's history; auth_ok carries it (docs/protocol.md
	// §1.3), so clients start their marks over when it changes.
	Incarnation []byte
	Logger      *slog.Logger
	Registry    *prometheus.Registry
	// Dashboard, if set, serves "/" and everything under /dashboard/.
	Dashboard http.Handler
	// Partitions, if set, enables group subscriptions (methods subscribe and
	// unsubscribe, push and partition_event frames).
	Partitions Partitions
	// Groups, if set, serves the group methods (create_group, send, receive,
	// group_info, external_join); Reports, if set, the report method.
	Groups  *Router
	Reports Reports
	// KeyPackages, if set, serves key_package_upload and key_package_count.
	KeyPackages KeyPackages
	// Audit, if set, records every change made through the admin API: who (the
	// admin token), what, and its detail.
	Audit func(ctx context.Context, actor, action, detail string)
	// OnChange, if set, receives every store change made by other processes, after
	// the gateway applied those it handles itself (revocations, mailbox pokes).
	OnChange func(directory.Change)
	// Revocations, if set, tells the other nodes of this provider (scale-out,
	// package natsbus) of the clients whose tokens this node revoked, so that they
	// close their sockets at once; the change log tells them too, later (and is
	// what a node that missed the notification relies on).
	Revocations Revocations
}

// Revocations carries this node's revocations to the other nodes of its provider,
// which call CloseClient. Revoked must not block.
type Revocations interface {
	Revoked(clientID int64)
}

// Revoke closes every live socket of a client whose token was revoked (4003) and
// tells the provider's other nodes, if any, to close theirs; it returns how many
// sockets this node closed. Every revocation made on this node (the admin API, the
// dashboard) goes through it.
func (s *Server) Revoke(clientID int64, reason string) int {
	n := s.CloseClient(clientID, protocol.CloseRevoked, reason)
	if s.deps.Revocations != nil {
		s.deps.Revocations.Revoked(clientID)
	}
	return n
}

// Server is the client gateway.
type Server struct {
	// Static after construction.
	relayTransport *http.Transport // the relay's connections to peers; set by MountOHTTP
	ohttpGateway   http.Handler    // the metered OHTTP gateway; set by MountOHTTP
	cfg            Config
	deps           Deps
	log            *slog.Logger
	echo           *echo.Echo
	metrics        *metrics
	handlers       map[protocol.Method]Handler
	fanout         *fanout
	connCfg        *conn.Config    // shared by every client socket
	ownBodyLimit   map[string]bool // routes that bound their bodies themselves (MountOHTTP)

	draining atomic.Bool
	shedding atomic.Bool // a pass of shed runs
	nextID   atomic.Uint64
	wg       sync.WaitGroup // live sessions

	mu           sync.Mutex
	sessions     map[*session]struct{}    // Guarded by mu.
	byClient     map[int64]*clientSockets // authenticated sockets; Guarded by mu.
	byUser       map[string]int           // authenticated sockets per user name; Guarded by mu.
	lastSeen     map[int64]time.Time      // when a client's last socket closed; Guarded by mu.
	unauth       int                      // sockets accepted, not yet authenticated; Guarded by mu.
	unauthByAddr map[string]int           // the same per source address; Guarded by mu.
}

// New builds a gateway; cfg must have been validated.
func New(cfg Config, deps Deps) *Server {
	cfg = cfg.WithDefaults()
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registry == nil {
		deps.Registry = NewRegistry()
	}
	s := &Server{
		cfg: cfg, deps: deps, log: deps.Logger, metrics: newMetrics(deps.Registry),
		handlers: make(map[protocol.Method]Handler),
		sessions: make(map[*session]struct{}), byClient: make(map[int64]*clientSockets),
		byUser: make(map[string]int), lastSeen: make(map[int64]time.Time), unauthByAddr: make(map[string]int), ownBodyLimit: make(map[string]bool),
	}
	s.connCfg = s.connConfig()
	s.metrics.queueGauges(deps.Registry, s.connCfg.Total)
	s.Handle(protocol.MethodPing, func(_ context.Context, _ *Caller, body []byte) ([]byte, error) { return body, nil })
	s.Handle(protocol.MethodMailboxStatus, s.mailboxStatus)
	if deps.Groups != nil {
		s.registerGroups(deps.Groups, deps.Reports)
	}
	if deps.KeyPackages != nil {
		s.registerKeyPackages(deps.KeyPackages)
	}
	if deps.Partitions != nil {
		s.fanout = newFanout(deps.Partitions)
		r := s.metrics.partReads
		s.fanout.socketReads, s.fanout.topicReads, s.fanout.recentHits = r.WithLabelValues("socket_read"),
			r.WithLabelValues("topic_read"), r.WithLabelValues("recent")
		s.fanout.pageReads, s.fanout.pageHits = r.WithLabelValues("page_read"), r.WithLabelValues("page")
	}
	s.echo = s.routes()
	return s
}

// Handle registers the handler for a request method. Call it before serving.
func (s *Server) Handle(m protocol.Method, h Handler) { s.handlers[m] = h }

// Handler returns the HTTP handler of the gateway.
func (s *Server) Handler() http.Handler { return s.echo }

// Echo exposes the echo application so other edges can add routes before serving.
func (s *Server) Echo() *echo.Echo { return s.echo }

func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = problemErrorHandler
	e.Use(s.limitBody)
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.deps.Registry, promhttp.HandlerOpts{})))
	e.GET("/v1/socket", s.socket)
	s.adminRoutes(e.Group("/admin/v1", s.adminAuth))
	if s.deps.Dashboard != nil {
		e.Any("/", echo.WrapHandler(s.deps.Dashboard))
		e.Any("/dashboard/*", echo.WrapHandler(s.deps.Dashboard))
	}
	return e
}

// ReadyCheck is one part /readyz reports: Err is nil while it works.
type ReadyCheck struct {
	Name string // e.g. store_read, store_write, store_disk
	Err  error
}

// notReady is the 503 answer of /readyz: a problem (RFC 9457) whose checks
// say, for each part, "ok" or what failed.
type notReady struct {
	Problem
	Checks map[string]string `json:"checks"`
}

// readyz answers 200 {"ready": true, "checks": {...}} while every part works.
func (s *Server) readyz(c echo.Context) error {
	if s.draining.Load() {
		return problem(http.StatusServiceUnavailable, "draining", "the server is shutting down")
	}
	checks := map[string]string{}
	var down []string
	if s.deps.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		for _, ch := range s.deps.Ready(ctx) {
			checks[ch.Name] = "ok"
			if ch.Err != nil {
				checks[ch.Name] = ch.Err.Error()
				down = append(down, ch.Name)
			}
		}
	}
	if len(down) > 0 {
		c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
		return c.JSON(http.StatusServiceUnavailable, notReady{Checks: checks, Problem: Problem{Title: "not ready",
			Status: http.StatusServiceUnavailable, Detail: strings.Join(down, ", ") + " down"}})
	}
	return c.JSON(http.StatusOK, map[string]any{"ready": true, "checks": checks})
}

// Serve serves the gateway on ln until ctx ends, then drains: it refuses new sockets,
// closes live ones with 1001 going away and waits (bounded) for them to finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hc := s.cfg.HTTP
	// The timeouts end at a WebSocket upgrade: net/http clears the deadlines of a
	// hijacked connection, whose reads and writes the socket's own limits bound.
	hs := &http.Server{Handler: s.echo, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ReadHeaderTimeout: hc.ReadHeaderTimeout.D(), ReadTimeout: hc.ReadTimeout.D(),
		WriteTimeout: hc.WriteTimeout.D(), IdleTimeout: hc.IdleTimeout.D()}
	last, known := s.lastChange(ctx) // before the first request: later changes are this server's to apply
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	go s.watchChanges(ctx, last, known)
	select {
	case err := <-errc:
		return fmt.Errorf("gateway: serve: %w", err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout.D())
	defer cancel()
	err := hs.Shutdown(sctx) // stops accepting; hijacked sockets are ours to close
	s.closeAll(protocol.CloseGoingAway, "server shutting down")
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		s.log.Warn("shutdown: sockets still open after timeout")
	}
	if s.relayTransport != nil {
		s.relayTransport.CloseIdleConnections()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// CloseClient closes every live socket of a client with the close code.
func (s *Server) CloseClient(clientID int64, code int, reason string) int {
	s.mu.Lock()
	var list []*session
	if cs := s.byClient[clientID]; cs != nil {
		for ss := range cs.sessions {
			list = append(list, ss)
		}
	}
	s.mu.Unlock()
	for _, ss := range list {
		ss.close(code, reason)
	}
	return len(list)
}

func (s *Server) closeAll(code int, reason string) {
	s.mu.Lock()
	list := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		list = append(list, ss)
	}
	s.mu.Unlock()
	for _, ss := range list {
		ss.close(code, reason)
	}
}

// Connected returns the number of authenticated sockets.
func (s *Server) Connected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, cs := range s.byClient {
		n += len(cs.sessions)
	}
	return n
}

// lastChange returns the ID of the latest change in the store, and false if the store
// did not answer: changes made before this server started are already reflected in
// the store.
func (s *Server) lastChange(ctx context.Context) (int64, bool) {
	var last int64
	for i := 0; i < 1000; i++ {
		cs, err := s.deps.Directory.Changes(ctx, last, 1000)
		if err != nil {
			return last, false
		}
		if len(cs) == 0 {
			break
		}
		last = cs[len(cs)-1].ID
	}
	return last, true
}

// watchChanges applies what other processes (the admin CLI) changed in the store
// after change last (once known, when the store answers): revoked clients lose their
// sockets, mailboxes written elsewhere are refetched; then OnChange sees the change.
func (s *Server) watchChanges(ctx context.Context, last int64, known bool) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !known {
			last, known = s.lastChange(ctx)
			continue
		}
		cs, err := s.deps.Directory.Changes(ctx, last, 1000)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("watch changes", "err", err)
			}
			continue
		}
		for _, c := range cs {
			last = c.ID
			switch c.Kind {
			case directory.ChangeRevoked:
				s.CloseClient(c.ClientID, protocol.CloseRevoked, "token revoked")
			case directory.ChangeMailbox:
				s.deps.Mailbox.Poke(c.ClientID)
			}
			if s.deps.OnChange != nil {
				s.deps.OnChange(c)
			}
		}
	}
}

func (s *Server) mailboxStatus(ctx context.Context, c *Caller, _ []byte) ([]byte, error) {
	st, err := s.deps.Mailbox.Status(ctx, c.Client.ID)
	if err != nil {
		return nil, err
	}
	return protocol.MailboxStatus{Pending: st.Pending, FirstSeq: st.FirstSeq, LastSeq: st.LastSeq}.MarshalBinary()
}
