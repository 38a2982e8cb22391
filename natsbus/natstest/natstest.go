// Package natstest runs a real NATS server in-process on a loopback port for tests
// of the nodes of one provider (package natsbus).
package natstest

import (
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is an embedded NATS server that lives until the test ends.
type Server struct {
	// Static after Start.
	port int

	mu  sync.Mutex
	srv *server.Server // Guarded by mu; nil while stopped.
}

// Start runs a NATS server on a free loopback port; it fails the test (never skips)
// when the server cannot start.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{port: -1}
	s.start(t)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: s.port, NoLog: true, NoSigs: true, MaxPayload: 8 << 20}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("natstest: nats server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		t.Fatalf("natstest: nats server on 127.0.0.1:%d did not start", s.port)
	}
	if s.port < 0 {
		_, p, _ := net.SplitHostPort(srv.Addr().String())
		s.port, _ = strconv.Atoi(p)
	}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
}

// URL is the server's client URL; it stays the same across Restart.
func (s *Server) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }

// Stop shuts the server down (every connection drops); Restart starts it again.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Restart stops the server and starts a new one, with no subscriptions and nothing
// in flight, on the same port: clients reconnect to it.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	s.start(t)
}
