package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

// A bench message's ciphertext ends with a stamp: the hub treats the
// ciphertext as opaque, and a PrivateMessage ends with its ciphertext, so a
// receiver finds the stamp at the end of the pushed message.
//
//	"MGB1" | run tag [4] | sender uint32 | seq uint64 | sent Unix ns int64
const stampSize = 28

var stampMagic = [4]byte{'M', 'G', 'B', '1'}

// putStamp writes the stamp into the last stampSize bytes of ct.
func putStamp(ct []byte, run [4]byte, sender uint32, seq uint64, sent time.Time) {
	s := ct[len(ct)-stampSize:]
	copy(s, stampMagic[:])
	copy(s[4:], run[:])
	binary.BigEndian.PutUint32(s[8:], sender)
	binary.BigEndian.PutUint64(s[12:], seq)
	binary.BigEndian.PutUint64(s[20:], uint64(sent.UnixNano()))
}

// parseStamp reads the stamp at the end of msg; ok is false when msg does not
// end with a stamp of run.
func parseStamp(msg []byte, run [4]byte) (sender uint32, seq uint64, sent time.Time, ok bool) {
	if len(msg) < stampSize {
		return 0, 0, time.Time{}, false
	}
	s := msg[len(msg)-stampSize:]
	if !bytes.Equal(s[:4], stampMagic[:]) || !bytes.Equal(s[4:8], run[:]) {
		return 0, 0, time.Time{}, false
	}
	sender = binary.BigEndian.Uint32(s[8:])
	seq = binary.BigEndian.Uint64(s[12:])
	return sender, seq, time.Unix(0, int64(binary.BigEndian.Uint64(s[20:]))), true
}

// benchGroup is a group the bench created on the server.
type benchGroup struct {
	g      *mlstest.Group
	masked []byte
}

// msgMaker makes one sender's messages: a random prefix chosen once, then the
// stamp. mlstest adds random sender data, and the stamp's sequence number
// makes every message of a run distinct, so the hub's retry dedup never
// merges two of them.
type msgMaker struct {
	run    [4]byte
	sender uint32
	prefix []byte
}

func (gb *groupBench) newMaker(sender uint32) *msgMaker {
	p := make([]byte, gb.o.Size-stampSize)
	rand.Read(p)
	return &msgMaker{run: gb.runTag, sender: sender, prefix: p}
}

// send sequences one application message with sequence number seq to g and
// returns its counter, known once the server committed it.
func (m *msgMaker) send(ctx context.Context, c *client.Client, g *benchGroup, seq uint64) (uint32, error) {
	ct := make([]byte, len(m.prefix)+stampSize)
	copy(ct, m.prefix)
	putStamp(ct, m.run, m.sender, seq, time.Now())
	msg, err := g.g.Application(ct)
	if err != nil {
		return 0, err
	}
	body, err := (&protocol.SendRequest{Message: msg, PartitionKey: g.g.PartitionKey}).MarshalBinary()
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(ctx, protocol.MethodSend, body)
	if err != nil {
		return 0, err
	}
	var sr protocol.SendResponse
	if err := sr.UnmarshalBinary(resp); err != nil {
		return 0, fmt.Errorf("SendResponse: %w", err)
	}
	return sr.Counter, nil
}

// errorCode returns the wire error code of err, 0 if it is not a wire error.
func errorCode(err error) protocol.Code {
	var we *protocol.Error
	if errors.As(err, &we) {
		return we.Code
	}
	return 0
}

// sendFailed records a failed send: rate limits are counted apart. It waits
// a little so that a refusing server is not spun on, and reports whether the
// sender's client has ended for good (its loop should stop).
func (gb *groupBench) sendFailed(ctx context.Context, err error) (stop bool) {
	if errorCode(err) == protocol.CodeRateLimited {
		gb.rateLimited.Add(1)
	} else {
		gb.fail("send", err)
	}
	if errors.Is(err, client.ErrClosed) {
		return true
	}
	sleepCtx(ctx, 10*time.Millisecond)
	return false
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// dialSenders connects one socket per credential; the senders consume no
// mailbox.
func (gb *groupBench) dialSenders(ctx context.Context, creds []createdClient) []*client.Client {
	out := make([]*client.Client, len(creds))
	forEach(ctx, len(creds), gb.o.DialConcurrency, func(i int) {
		c, err := gb.dial(ctx, creds[i], nil)
		if err != nil {
			gb.fail("connect sender", err)
			return
		}
		out[i] = c
	})
	var conns []*client.Client
	for _, c := range out {
		if c != nil {
			conns = append(conns, c)
		}
	}
	return conns
}

// dial opens one socket; cfg may set OnPush and OnConnect. The client is
// registered for cleanup.
func (gb *groupBench) dial(ctx context.Context, cred createdClient, edit func(*client.Config)) (*client.Client, error) {
	cfg := client.Config{
		URL: gb.nextSocket(), Token: cred.Token, HandshakeTimeout: 30 * time.Second, PingInterval: -1,
		DeliveryQueueLen: 1, MaxReconnectAttempts: 5,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 2 * time.Second, Logger: gb.log,
	}
	if edit != nil {
		edit(&cfg)
	}
	dctx, cancel := context.WithTimeout(ctx, cfg.HandshakeTimeout)
	defer cancel()
	c, err := client.Dial(dctx, cfg)
	if err != nil {
		return nil, err
	}
	gb.mu.Lock()
	gb.clients = append(gb.clients, &benchConn{c: c})
	gb.mu.Unlock()
	return c, nil
}

// createGroup creates a one-member group whose member is c's client, through
// c's socket, retrying while the server rate-limits c's user.
func (gb *groupBench) createGroup(ctx context.Context, c *client.Client) (*benchGroup, error) {
	g, err := mlstest.NewGroup(mlstest.Options{CipherSuite: gb.suite, Identities: []string{c.Session().ClientID}})
	if err != nil {
		return nil, err
	}
	body, err := (&protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey}).MarshalBinary()
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		resp, err := c.Do(ctx, protocol.MethodCreateGroup, body)
		if errorCode(err) == protocol.CodeRateLimited && attempt < 50 {
			gb.rateLimited.Add(1)
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("create group: %w", err)
		}
		var cr protocol.CreateGroupResponse
		if err := cr.UnmarshalBinary(resp); err != nil {
			return nil, fmt.Errorf("CreateGroupResponse: %w", err)
		}
		if !bytes.Equal(cr.MaskedPartitionKey, g.MaskedPartitionKey()) {
			return nil, fmt.Errorf("create group: masked partition key %x, want %x", cr.MaskedPartitionKey, g.MaskedPartitionKey())
		}
		return &benchGroup{g: g, masked: cr.MaskedPartitionKey}, nil
	}
}

// createGroups creates n groups, their creators taken in turn from senders.
// It fails only when no group could be created.
func (gb *groupBench) createGroups(ctx context.Context, senders []*client.Client, n int) ([]*benchGroup, error) {
	out := make([]*benchGroup, n)
	var firstErr atomic.Pointer[error]
	forEach(ctx, n, min(len(senders)*4, 64), func(i int) {
		g, err := gb.createGroup(ctx, senders[i%len(senders)])
		if err != nil {
			firstErr.CompareAndSwap(nil, &err)
			gb.fail("create group", err)
			return
		}
		out[i] = g
	})
	var groups []*benchGroup
	for _, g := range out {
		if g != nil {
			groups = append(groups, g)
		}
	}
	if len(groups) == 0 {
		if p := firstErr.Load(); p != nil {
			return nil, *p
		}
		return nil, fmt.Errorf("no group created: %w", ctx.Err())
	}
	return groups, nil
}

// seqResult is the report of a sequencing phase.
type seqResult struct {
	Groups            int            `json:"groups"`
	GroupsCreated     int            `json:"groups_created"`
	CreateSeconds     float64        `json:"create_seconds"`
	Senders           int            `json:"senders"`
	InFlight          int            `json:"inflight_per_sender"`
	Seconds           float64        `json:"seconds"`
	Sequenced         int64          `json:"sequenced"`
	Failed            int64          `json:"failed"`
	RateLimited       int64          `json:"rate_limited"`
	MessagesPerSecond float64        `json:"messages_per_second"`
	SendLatency       latencySummary `json:"send_latency"`
}

// sequencePhase creates n groups, then has every sender keep o.InFlight
// messages in flight, spread over the groups in turn, for o.Duration (or
// o.MaxMessages messages). A message counts when its counter arrives, which
// is after the server committed it.
func (gb *groupBench) sequencePhase(ctx context.Context, senders []*client.Client, n int) (*seqResult, error) {
	o := gb.o
	res := &seqResult{Groups: n, Senders: len(senders), InFlight: o.InFlight}
	start := time.Now()
	groups, err := gb.createGroups(ctx, senders, n)
	res.GroupsCreated, res.CreateSeconds = len(groups), seconds(time.Since(start))
	if err != nil {
		return res, err
	}
	gb.log.Info("bench-group: groups created", "n", len(groups), "seconds", res.CreateSeconds)
	var (
		next, sent, failed atomic.Int64
		lat                histogram
		wg                 sync.WaitGroup
	)
	limited := gb.rateLimited.Load()
	start = time.Now()
	deadline := start.Add(o.Duration)
	for si, c := range senders {
		mk := gb.newMaker(uint32(si))
		for range o.InFlight {
			wg.Go(func() {
				for ctx.Err() == nil && time.Now().Before(deadline) {
					seq := next.Add(1)
					if seq > int64(o.MaxMessages) {
						return
					}
					t0 := time.Now()
					if _, err := mk.send(ctx, c, groups[int(seq)%len(groups)], uint64(seq)); err != nil {
						if ctx.Err() != nil {
							return
						}
						if errorCode(err) != protocol.CodeRateLimited {
							failed.Add(1)
						}
						if gb.sendFailed(ctx, err) {
							return
						}
						continue
					}
					lat.Record(time.Since(t0))
					sent.Add(1)
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	res.Seconds = seconds(elapsed)
	res.Sequenced, res.Failed = sent.Load(), failed.Load()
	res.RateLimited = gb.rateLimited.Load() - limited
	res.MessagesPerSecond = float64(res.Sequenced) / elapsed.Seconds()
	res.SendLatency = lat.Summary()
	if res.Sequenced == 0 {
		return res, errors.New("no message was sequenced")
	}
	return res, ctx.Err()
}

func (s *seqResult) print(w io.Writer, title string) {
	fmt.Fprintf(w, "%s (%d senders x %d in flight, closed loop, %.1fs", title, s.Senders, s.InFlight, s.Seconds)
	if s.Groups > 1 {
		fmt.Fprintf(w, "; %d groups created in %.1fs", s.GroupsCreated, s.CreateSeconds)
	}
	fmt.Fprintf(w, "):\n  %d sequenced, %d failed, %d rate-limited: %.0f messages/s\n",
		s.Sequenced, s.Failed, s.RateLimited, s.MessagesPerSecond)
	fmt.Fprintf(w, "  send latency (request -> counter, after the commit): %s\n", s.SendLatency)
}
