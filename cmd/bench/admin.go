package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// adminAPI is the bench's client of the admin HTTP API and /metrics.
type adminAPI struct {
	base  *url.URL
	token string
	http  *http.Client
}

func newAdminAPI(base *url.URL, token string, conns int) *adminAPI {
	return &adminAPI{base: base, token: token, http: &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: 30 * time.Second,
		},
	}}
}

// maxAdminBody bounds what the bench reads from any admin answer.
const maxAdminBody = 16 << 20

// call sends a JSON request and decodes a JSON answer into out (if non-nil). Any
// status other than want is an error carrying the problem JSON's title and detail.
func (a *adminAPI) call(ctx context.Context, method, path string, in, out any, want int) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := a.base.JoinPath(path)
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminBody))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != want {
		var p struct {
			Title  string `json:"title"`
			Detail string `json:"detail"`
		}
		if json.Unmarshal(b, &p) == nil && p.Title != "" {
			return &statusError{fmt.Sprintf("%s %s: HTTP %d: %s: %s", method, path, resp.StatusCode, p.Title, p.Detail), resp.StatusCode}
		}
		return &statusError{fmt.Sprintf("%s %s: HTTP %d: %.200s", method, path, resp.StatusCode, b), resp.StatusCode}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// statusError is an admin API answer with an unexpected HTTP status.
type statusError struct {
	msg    string
	status int
}

func (e *statusError) Error() string { return e.msg }

// createdClient is the answer of POST /admin/v1/clients.
type createdClient struct {
	UserID   string `json:"user_id"`
	ClientID string `json:"client_id"`
	Token    string `json:"token"`
}

func (a *adminAPI) createClient(ctx context.Context, user, client string) (createdClient, error) {
	var out createdClient
	in := map[string]any{"user": user, "client": client, "create_user": true}
	err := a.call(ctx, http.MethodPost, "/admin/v1/clients", in, &out, http.StatusCreated)
	if err == nil && (out.Token == "" || out.ClientID == "") {
		err = fmt.Errorf("POST /admin/v1/clients: answer without token or client_id")
	}
	return out, err
}

// removeUser removes a user; one that does not exist counts as removed.
func (a *adminAPI) removeUser(ctx context.Context, user string) error {
	err := a.call(ctx, http.MethodDelete, "/admin/v1/users/"+url.PathEscape(user), nil, nil, http.StatusOK)
	var se *statusError
	if errors.As(err, &se) && se.status == http.StatusNotFound {
		return nil
	}
	return err
}

// listUsers returns the names of the server's users.
func (a *adminAPI) listUsers(ctx context.Context) ([]string, error) {
	var out []struct {
		Name string `json:"name"`
	}
	if err := a.call(ctx, http.MethodGet, "/admin/v1/users", nil, &out, http.StatusOK); err != nil {
		return nil, err
	}
	names := make([]string, len(out))
	for i, u := range out {
		names[i] = u.Name
	}
	return names, nil
}

// noticeUser enqueues a notice for every client of one user (its URI) and
// returns how many entries the server committed.
func (a *adminAPI) noticeUser(ctx context.Context, userURI, text string) (int, error) {
	var out struct {
		Enqueued int `json:"enqueued"`
	}
	in := map[string]any{"to": map[string]any{"user": userURI}, "text": text}
	err := a.call(ctx, http.MethodPost, "/admin/v1/notices", in, &out, http.StatusAccepted)
	return out.Enqueued, err
}

func (a *adminAPI) gc(ctx context.Context) error {
	return a.call(ctx, http.MethodPost, "/admin/v1/debug/gc", nil, nil, http.StatusOK)
}

// serverSample is what the bench reads from /metrics.
type serverSample struct {
	RSS        int64 // process_resident_memory_bytes
	Connected  int   // mimids_sockets_connected
	Heap       int64 // go_memstats_heap_alloc_bytes: live heap, right after a forced GC
	Stacks     int64 // go_memstats_stack_inuse_bytes: goroutine stacks
	Goroutines int   // go_goroutines
}

func (a *adminAPI) sample(ctx context.Context) (serverSample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base.JoinPath("/metrics").String(), nil)
	if err != nil {
		return serverSample{}, err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return serverSample{}, fmt.Errorf("GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminBody))
	if err != nil || resp.StatusCode != http.StatusOK {
		return serverSample{}, fmt.Errorf("GET /metrics: HTTP %d: %v", resp.StatusCode, err)
	}
	text := string(b)
	rss, err := metricValue(text, "process_resident_memory_bytes")
	if err != nil {
		return serverSample{}, err
	}
	s := serverSample{RSS: int64(rss)}
	for _, m := range []struct {
		name string
		to   func(float64)
	}{
		{"mimids_sockets_connected", func(v float64) { s.Connected = int(v) }},
		{"go_memstats_heap_alloc_bytes", func(v float64) { s.Heap = int64(v) }},
		{"go_memstats_stack_inuse_bytes", func(v float64) { s.Stacks = int64(v) }},
		{"go_goroutines", func(v float64) { s.Goroutines = int(v) }},
	} {
		v, err := metricValue(text, m.name)
		if err != nil {
			return serverSample{}, err
		}
		m.to(v)
	}
	return s, nil
}

// socketURL is the client socket endpoint under base.
func socketURL(base *url.URL) string {
	u := *base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/socket"
	return u.String()
}

// nextSocket is the socket URL for the next socket: the nodes of -url in turn.
func (b *bench) nextSocket() string {
	return b.wsURLs[(b.dialed.Add(1)-1)%uint64(len(b.wsURLs))]
}
