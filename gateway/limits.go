package gateway

// Resource limits (docs/protocol.md §1.10 and §2.1): sockets per client and per user,
// unauthenticated sockets in total and per source address, the bytes queued for one
// client's sockets, a budget on the bytes queued for every socket of the server,
// which closes the largest queues first when it is exceeded, and the size of HTTP
// request bodies.

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mimids/mimids/gateway/conn"
	"github.com/mimids/mimids/protocol"
)

// clientSockets is what the live sockets of one client share.
type clientSockets struct {
	sessions map[*session]struct{} // Guarded by Server.mu.

	// Static after construction.
	budget *conn.Budget // bytes queued for all of the client's sockets
	frames *frameCache  // the client's encoded deliver frames
}

// Refusal reasons, the label of mimids_sockets_refused_total.
const (
	refusedClient        = "too_many_sockets_client"
	refusedUser          = "too_many_sockets_user"
	refusedUnauthTotal   = "unauthenticated_total"
	refusedUnauthPerAddr = "unauthenticated_per_address"
)

// admit registers an authenticated session with its client, unless the client or
// its user already has as many sockets as allowed; it returns the refusal reason.
// Registered, the session is reachable by revocation (CloseClient).
func (s *Server) admit(ss *session) (refused string) {
	id, user := ss.caller.Client.ID, ss.caller.Client.UserName
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.byClient[id]
	switch {
	case cs != nil && len(cs.sessions) >= s.cfg.MaxSocketsPerClient:
		refused = refusedClient
	case s.byUser[user] >= s.cfg.MaxSocketsPerUser:
		refused = refusedUser
	}
	if refused != "" {
		s.metrics.refused.WithLabelValues(refused).Inc()
		return refused
	}
	if cs == nil {
		cs = &clientSockets{sessions: make(map[*session]struct{}, 1),
			budget: conn.NewBudget(int64(s.cfg.ClientQueueBytes)), frames: newFrameCache(s.cfg.SendQueueBytes)}
		s.byClient[id] = cs
	}
	cs.sessions[ss] = struct{}{}
	cs.frames.join(ss)
	s.byUser[user]++
	ss.shared = cs
	return ""
}

// ClientSockets returns how many authenticated sockets a client has and when it was
// last seen: now while connected, else when its last socket closed since this
// process started (zero if it never connected).
func (s *Server) ClientSockets(clientID int64) (int, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs := s.byClient[clientID]; cs != nil {
		return len(cs.sessions), time.Now()
	}
	return 0, s.lastSeen[clientID]
}

// unregister forgets a session that has ended.
func (s *Server) unregister(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, ss)
	if ss.shared == nil {
		return
	}
	id, user := ss.caller.Client.ID, ss.caller.Client.UserName
	ss.shared.frames.leave(ss)
	if cs := s.byClient[id]; cs != nil {
		delete(cs.sessions, ss)
		if len(cs.sessions) == 0 {
			delete(s.byClient, id)
			s.lastSeen[id] = time.Now()
		}
	}
	if s.byUser[user]--; s.byUser[user] <= 0 {
		delete(s.byUser, user)
	}
}

// sourceAddr is the address a request came from, for the per-address limit: the
// peer's IP, or the whole RemoteAddr if it has no port.
func sourceAddr(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// admitUnauthenticated counts a socket about to be accepted from addr until the
// returned release is called (once its authentication ended, either way), or
// refuses it with an HTTP problem when there are too many unauthenticated sockets
// in total (503) or from addr (429).
func (s *Server) admitUnauthenticated(addr string) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.unauth >= s.cfg.MaxUnauthenticated:
		s.metrics.refused.WithLabelValues(refusedUnauthTotal).Inc()
		return nil, problem(http.StatusServiceUnavailable, "too many unauthenticated sockets",
			"the server is authenticating as many sockets as it allows; retry later")
	case s.unauthByAddr[addr] >= s.cfg.MaxUnauthenticatedPerAddress:
		s.metrics.refused.WithLabelValues(refusedUnauthPerAddr).Inc()
		return nil, problem(http.StatusTooManyRequests, "too many unauthenticated sockets",
			"this address has as many sockets waiting for authentication as it may; authenticate those first")
	}
	s.unauth++
	s.unauthByAddr[addr]++
	s.metrics.unauth.Inc()
	done := false
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if done {
			return
		}
		done = true
		s.unauth--
		s.metrics.unauth.Dec()
		if s.unauthByAddr[addr]--; s.unauthByAddr[addr] <= 0 {
			delete(s.unauthByAddr, addr)
		}
	}, nil
}

// overBudget is conn.Config.OverBudget: the bytes queued for all sockets went over
// total_queue_bytes. One shedding pass runs at a time; while the budget stays over,
// the next message queued starts another.
func (s *Server) overBudget() {
	if s.shedding.CompareAndSwap(false, true) {
		go func() {
			defer s.shedding.Store(false)
			s.shed()
		}()
	}
}

// shed closes the sockets with the largest queues, largest first, until what the
// others hold fits the budget. Sockets already closing are counted as freed: their
// queues go when they end. Their clients reconnect and resume from their mailbox
// seq and partition counters, which are durable: nothing is lost.
func (s *Server) shed() {
	total := s.connCfg.Total
	over := total.Used() - total.Limit()
	if over <= 0 {
		return
	}
	type queue struct {
		ss    *session
		bytes int64
	}
	s.mu.Lock()
	list := make([]queue, 0, len(s.sessions))
	for ss := range s.sessions {
		list = append(list, queue{ss: ss})
	}
	s.mu.Unlock()
	live := list[:0]
	for _, q := range list {
		if q.bytes = q.ss.c.Queued(); q.bytes == 0 {
			continue
		}
		if _, closing := q.ss.c.Reason(); closing {
			over -= q.bytes
			continue
		}
		live = append(live, q)
	}
	slices.SortFunc(live, func(a, b queue) int { return cmp.Compare(b.bytes, a.bytes) })
	closed, freed := 0, int64(0)
	for _, q := range live {
		if over <= 0 {
			break
		}
		q.ss.close(protocol.CloseOverloaded, "server over its send queue budget")
		over -= q.bytes
		closed++
		freed += q.bytes
	}
	if closed > 0 { // one line per pass, however many sockets it closes
		s.log.Warn("send queues over budget: closed the largest", "sockets", closed, "queued_bytes", freed,
			"total_queue_bytes", total.Limit())
	}
}

// limitBody refuses a request body over http.max_body_bytes with 413: by its
// Content-Length before anything is read (net/http then closes the connection rather
// than drain it), or as soon as reading goes past the limit (bindJSON). The Oblivious
// HTTP routes bound their bodies themselves, the same way, and count their refusals.
func (s *Server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.ownBodyLimit[c.Path()] {
			return next(c)
		}
		r, limit := c.Request(), s.cfg.HTTP.MaxBodyBytes
		if r.ContentLength > limit {
			s.metrics.refusedBodies.Inc()
			return problem(http.StatusRequestEntityTooLarge, "request too large", fmt.Sprintf("the body is over %d bytes", limit))
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
		return next(c)
	}
}

// bindJSON decodes a JSON request body into v; shape describes it for the 400.
func (s *Server) bindJSON(c echo.Context, v any, shape string) error {
	err := c.Bind(v)
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooLarge):
		s.metrics.refusedBodies.Inc()
		return problem(http.StatusRequestEntityTooLarge, "request too large", fmt.Sprintf("the body is over %d bytes", tooLarge.Limit))
	}
	return problem(http.StatusBadRequest, "invalid request", "body must be JSON "+shape)
}
