package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

// lockedBuffer is a log sink the provider's goroutines write to concurrently.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSuffix(l.b.String(), "\n"), "\n")
}

// bogusWelcome is a Welcome of suite 1 with n secrets for random KeyPackageRefs, all
// said to be of provider domain: refs this provider never served.
func bogusWelcome(t *testing.T, n int, domain string) *protocol.WelcomeData {
	t.Helper()
	w := &mls.Welcome{CipherSuite: 1, EncryptedGroupInfo: make([]byte, 64)}
	wd := &protocol.WelcomeData{}
	for range n {
		ref := make([]byte, 32)
		rand.Read(ref)
		w.Secrets = append(w.Secrets, mls.EncryptedGroupSecrets{NewMember: ref,
			EncryptedGroupSecrets: mls.HPKECiphertext{KEMOutput: []byte{1}, Ciphertext: []byte{2}}})
		wd.ServiceProviders = append(wd.ServiceProviders, domain)
	}
	b, err := (&mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatWelcome, Welcome: w}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	wd.Welcome = b
	return wd
}

// TestCreateGroupLogsOneLine: a client sends, over a real socket, one create_group
// whose Welcome names thousands of KeyPackages the provider never served (the issue's
// 580 KB request). The provider's log at WARN gets at most one line for the request,
// carrying the count, instead of one line per KeyPackageRef.
func TestCreateGroupLogsOneLine(t *testing.T) {
	const refs = 12000
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a := providertest.StartWithLog(t, "a.example", nil, nil, log)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, token, err := a.Dir.AddClient(ctx, "alice", "phone", true)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, client.Config{URL: a.Socket, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	g, err := mlstest.NewGroup(mlstest.Options{Identities: []string{"mimi://a.example/d/alice/phone"}})
	if err != nil {
		t.Fatal(err)
	}
	req := &protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey,
		WelcomeData: bogusWelcome(t, refs, "a.example")}
	body, _ := req.MarshalBinary()
	if len(body) < 500<<10 {
		t.Fatalf("request of %d bytes, want the issue's ~580 KB", len(body))
	}
	_, err = c.CreateGroup(ctx, req) // accepted or refused: either way the log stays short
	t.Logf("create_group of %d bytes with %d unserved refs: %v", len(body), refs, err)
	// The socket's next answer comes after the request was handled and logged.
	if _, err := c.Do(ctx, protocol.MethodKeyPackageCount, []byte{0, 1}); err != nil {
		t.Fatal(err)
	}
	var warns []string
	for _, l := range logs.lines() {
		if l != "" {
			warns = append(warns, l)
		}
	}
	if len(warns) > 1 {
		t.Fatalf("%d log lines at WARN for one request, want at most 1; first: %s", len(warns), warns[0])
	}
	for _, l := range warns {
		if !strings.Contains(l, "refs=12000") {
			t.Errorf("log line without the count: %s", l)
		}
	}
}
