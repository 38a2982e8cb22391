package follower

import (
	"context"
	"time"

	"github.com/mimids/mimids/protocol"
)

// The lifecycle of local copies (docs/protocol.md §5.14). The follower cannot see
// who is a member of a group it does not host, so "no local client needs the
// partition" is read as "no local client subscribes to it": a copy without a local
// subscriber for CopiesConfig.Idle is unsubscribed at its hub (an unsubscribe
// envelope: the hub stops pushing and forgets its record), and one without a local
// subscriber for CopiesConfig.Retention is deleted. A client that subscribes
// again in between is served from the copy at once, and the follower subscribes
// again from where the copy stands; after the deletion it starts from scratch.

// Run sweeps the copies until ctx ends, every Idle/4 (at most a minute).
func (c *Copies) Run(ctx context.Context) error {
	if c.cfg.Link == nil {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(min(time.Minute, max(c.cfg.Idle/4, 10*time.Millisecond)))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.Sweep(ctx)
		}
	}
}

type idleCopy struct {
	masked []byte
	hub    string
}

// Sweep marks the copies with local subscribers used, unsubscribes those idle
// for Idle and deletes those idle for Retention (already unsubscribed).
func (c *Copies) Sweep(ctx context.Context) {
	now := c.cfg.Now()
	var used [][]byte
	var unsub, prune []idleCopy
	c.mu.Lock()
	for m, st := range c.state {
		if len(c.sinks[m]) > 0 {
			st.usedAt = now
			used = append(used, []byte(m))
			continue
		}
		switch idle := now.Sub(st.usedAt); {
		case idle >= c.cfg.Idle && st.subscribed:
			unsub = append(unsub, idleCopy{[]byte(m), st.hub})
		case idle >= c.cfg.Retention && !st.subscribed:
			prune = append(prune, idleCopy{[]byte(m), st.hub})
		}
	}
	c.mu.Unlock()
	if len(used) > 0 {
		if err := c.cfg.Store.TouchCopies(ctx, used, now); err != nil && ctx.Err() == nil {
			c.log.Warn("follower: copies used", "err", err)
		}
	}
	if c.cfg.Bus != nil && len(unsub)+len(prune) > 0 && !c.usedElsewhere(ctx) {
		return
	}
	for _, ic := range unsub {
		c.unsubscribe(ctx, ic, now)
	}
	for _, ic := range prune {
		c.prune(ctx, ic, now)
	}
}

// usedElsewhere takes the use times the other nodes of this provider recorded
// (their sweeps touch the copies their clients follow), so that no node
// unsubscribes a copy another node's clients use: unsubscribe and prune check the
// idle time again. It reports false when the store could not be read.
func (c *Copies) usedElsewhere(ctx context.Context) bool {
	recs, err := c.cfg.Store.CopyRecords(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("follower: read the copies", "err", err)
		}
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range recs {
		if st := c.state[string(r.Masked)]; st != nil && r.UsedAt.After(st.usedAt) {
			st.usedAt = r.UsedAt
		}
	}
	return true
}

// unsubscribe tells the copy's hub to stop pushing it, unless it was followed
// again meanwhile; a failure is tried again at the next sweep. It holds the
// copy's op lock, so no subscribe of the copy is in flight with it.
func (c *Copies) unsubscribe(ctx context.Context, ic idleCopy, now time.Time) {
	c.mu.Lock()
	st := c.state[string(ic.masked)]
	c.mu.Unlock()
	if st == nil {
		return
	}
	st.op.Lock()
	defer st.op.Unlock()
	c.mu.Lock()
	idle := c.state[string(ic.masked)] == st && st.subscribed && len(c.sinks[string(ic.masked)]) == 0 &&
		now.Sub(st.usedAt) >= c.cfg.Idle
	c.mu.Unlock()
	if !idle {
		return
	}
	body, err := (&protocol.PartitionUnsubscribe{Masked: ic.masked}).MarshalBinary()
	if err == nil {
		cctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		_, err = c.cfg.Link.Call(cctx, ic.hub, protocol.EnvelopeUnsubscribe, body)
		cancel()
	}
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("follower: unsubscribe an idle copy", "hub", ic.hub, "err", err)
		}
		return
	}
	c.mu.Lock()
	st.subscribed = false
	c.mu.Unlock()
	c.log.Info("follower: unsubscribed an idle copy", "hub", ic.hub, "idle", c.cfg.Idle)
}

// prune deletes a copy still idle, unless it was followed again meanwhile.
func (c *Copies) prune(ctx context.Context, ic idleCopy, now time.Time) {
	m := string(ic.masked)
	c.mu.Lock()
	st := c.state[m]
	if st == nil || st.subscribed || len(c.sinks[m]) > 0 || now.Sub(st.usedAt) < c.cfg.Retention {
		c.mu.Unlock()
		return
	}
	delete(c.state, m)
	if st.digest != nil {
		delete(c.masked, string(st.digest))
	}
	c.mu.Unlock()
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	c.mu.Lock()
	again := c.state[m] != nil
	c.mu.Unlock()
	if again {
		return
	}
	if err := c.cfg.Store.RemoveCopy(ctx, ic.masked); err != nil {
		if ctx.Err() == nil {
			c.log.Warn("follower: delete an idle copy", "hub", ic.hub, "err", err)
		}
		return
	}
	c.log.Info("follower: deleted a copy no local client followed", "hub", ic.hub, "retention", c.cfg.Retention)
}
