package web

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	historyLen   = 600 // ten minutes of one point a second
	sampleEvery  = time.Second
	maxWatched   = 200 // client IDs one stream may follow
	streamBuffer = 8   // points queued per subscriber; a slower one skips points
	// streamWriteTimeout bounds one write of the live stream: a client that reads
	// nothing for this long is dropped.
	streamWriteTimeout = 10 * time.Second
)

// Point is one second of the overview, as the live stream sends it.
type Point struct {
	T               int64              `json:"t"` // unix milliseconds
	Connections     int                `json:"connections"`
	Messages        float64            `json:"messages"`   // per second
	Deliveries      float64            `json:"deliveries"` // per second
	MailboxDepth    int64              `json:"mailbox"`
	FederationDepth int64              `json:"federation"`
	Errors          map[string]float64 `json:"errors"` // totals since start, by code
}

// sampler reads the metrics once a second for every subscriber: one goroutine, one
// encoding per point, a non-blocking send to each.
type sampler struct {
	// Static after construction.
	metrics Metrics
	now     func() time.Time
	log     *slog.Logger

	mu      sync.Mutex
	history []Point                  // oldest first, at most historyLen; Guarded by mu.
	subs    map[chan []byte]struct{} // Guarded by mu.
	prev    Sample                   // Owned by run.
	prevAt  time.Time                // Owned by run.
}

func newSampler(m Metrics, now func() time.Time, log *slog.Logger) *sampler {
	return &sampler{metrics: m, now: now, log: log, subs: make(map[chan []byte]struct{})}
}

func (s *sampler) run(ctx context.Context) error {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		s.sample(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// sample takes one point and hands it to every subscriber.
func (s *sampler) sample(ctx context.Context) {
	cur, err := s.metrics.Sample(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("web: sample metrics", "err", err)
		}
		return
	}
	now := s.now()
	p := Point{T: now.UnixMilli(), Connections: cur.Connections, MailboxDepth: cur.MailboxDepth,
		FederationDepth: cur.FederationDepth, Errors: cur.Errors}
	if !s.prevAt.IsZero() {
		if dt := now.Sub(s.prevAt).Seconds(); dt > 0 {
			p.Messages = max(cur.Sequenced-s.prev.Sequenced, 0) / dt
			p.Deliveries = max(cur.Delivered-s.prev.Delivered, 0) / dt
		}
	}
	s.prev, s.prevAt = cur, now
	msg := event("point", p)
	s.mu.Lock()
	s.history = append(s.history, p)
	if len(s.history) > historyLen {
		s.history = append(s.history[:0], s.history[len(s.history)-historyLen:]...)
	}
	for ch := range s.subs {
		select {
		case ch <- msg:
		default: // this subscriber is behind: it skips a point, which carries its time
		}
	}
	s.mu.Unlock()
}

// latest is the newest point (zero before the first).
func (s *sampler) latest() Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.history) == 0 {
		return Point{}
	}
	return s.history[len(s.history)-1]
}

// subscribe returns the history so far and a channel of the points after it.
func (s *sampler) subscribe() (history []byte, ch chan []byte, cancel func()) {
	ch = make(chan []byte, streamBuffer)
	s.mu.Lock()
	history = event("history", s.history)
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	return history, ch, func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}
}

// event encodes one server-sent event.
func event(name string, v any) []byte {
	b, _ := json.Marshal(v)
	return []byte(fmt.Sprintf("event: %s\ndata: %s\n\n", name, b))
}

// watched parses the client IDs a stream follows (?clients=1,2,3).
func watched(q string) ([]int64, error) {
	if q == "" {
		return nil, nil
	}
	parts := strings.Split(q, ",")
	if len(parts) > maxWatched {
		return nil, fmt.Errorf("at most %d clients", maxWatched)
	}
	ids := make([]int64, 0, len(parts))
	for _, p := range parts {
		id, err := strconv.ParseInt(p, 10, 64)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("bad client id %q", p)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

type clientLive struct {
	Sockets  int    `json:"sockets"`
	LastSeen string `json:"last_seen"`
}

// events is the live stream: the history, then a point a second, and for the
// clients it follows their live sockets whenever they change. It ends when the
// session does.
func (d *Dashboard) events(w http.ResponseWriter, r *http.Request, s *session) {
	ids, err := watched(r.URL.Query().Get("clients"))
	if err != nil {
		d.fail(w, r, s, http.StatusBadRequest, "Bad request", err.Error())
		return
	}
	rc := http.NewResponseController(w)
	// The server's write timeout would end the stream: each write gets its own.
	deadline := func() { _ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout)) }
	deadline()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	history, ch, cancel := d.live.subscribe()
	defer cancel()
	w.Write([]byte("retry: 3000\n\n"))
	w.Write(history)
	last := map[int64]clientLive{}
	d.writeClients(w, ids, last)
	if rc.Flush() != nil {
		return
	}
	recheck := time.Now()
	for {
		select {
		case <-r.Context().Done():
			return
		case msg := <-ch:
			if !d.sessions.alive(s) {
				w.Write(event("ended", "the session ended"))
				rc.Flush()
				return
			}
			if time.Since(recheck) >= recheckEvery {
				recheck = time.Now()
				if err := d.deps.Admins.Check(r.Context(), s.who); err != nil {
					d.sessions.close(s)
					continue
				}
			}
			deadline()
			w.Write(msg)
			d.writeClients(w, ids, last)
			if rc.Flush() != nil {
				return
			}
		}
	}
}

// writeClients sends the followed clients whose sockets changed since last.
func (d *Dashboard) writeClients(w http.ResponseWriter, ids []int64, last map[int64]clientLive) {
	changed := map[string]clientLive{}
	for _, id := range ids {
		n, seen := d.deps.Sockets.ClientSockets(id)
		cl := clientLive{Sockets: n, LastSeen: funcs["when"].(func(time.Time) string)(seen)}
		if n > 0 {
			cl.LastSeen = "now"
		}
		if old, ok := last[id]; !ok || old != cl {
			last[id] = cl
			changed[strconv.FormatInt(id, 10)] = cl
		}
	}
	if len(changed) > 0 {
		w.Write(event("clients", changed))
	}
}
