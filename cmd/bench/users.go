package bench

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// The bench users: every name starts with prefix() (bench-<run>-), so that a
// run touches no user it did not create, and what a failed cleanup leaves is
// easy to find.
const (
	mailRole = "mail" // `mimids bench`: the user whose clients get the notices
	idleRole = "idle" // `mimids bench`: the user whose clients only hold sockets
	sendKind = "send-"
	subKind  = "sub-"
)

// prefix starts the name of every user of this run.
func (b *bench) prefix() string { return "bench-" + b.run + "-" }

// announce says, before anything is created, what `mimids bench` creates.
func (b *bench) announce(o benchOptions) {
	what := fmt.Sprintf("1 user %s%s with %d clients", b.prefix(), mailRole, o.Clients)
	if o.Idle > 0 {
		what += fmt.Sprintf(" and 1 user %s%s with %d idle clients", b.prefix(), idleRole, o.Idle)
	}
	fmt.Fprintf(b.note, "mimids bench: creating %s on %s; notices go to them only; %s\n", what, o.URL, b.fate())
}

// announce says, before anything is created, what `mimids bench-group` creates.
func (gb *groupBench) announce() {
	o := gb.o
	users := fmt.Sprintf("%d users %s%s0000..%04d", o.Senders, gb.prefix(), sendKind, o.Senders-1)
	n := o.Senders
	if o.pushPhases() {
		users += fmt.Sprintf(" and %d users %s%s0000..%04d", o.Subscribers, gb.prefix(), subKind, o.Subscribers-1)
		n += o.Subscribers
	}
	fmt.Fprintf(gb.note, "mimids bench-group: creating %d users (%s), one client each, and groups of them only, on %s; %s (the groups stay in the store)\n",
		n, users, o.URL, gb.fate())
}

// fate says what becomes of the users at the end.
func (b *bench) fate() string {
	if b.o.Keep {
		return "they are kept at the end (-keep)"
	}
	return "they are removed at the end, also after a failure or Ctrl-C"
}

// createClients creates n users with one client each, bench-<run>-<kind>NNNN,
// and returns the credentials of those that were created.
func (b *bench) createClients(ctx context.Context, kind string, n int) ([]createdClient, error) {
	return b.create(ctx, n, func(i int) (string, string) {
		return fmt.Sprintf("%s%s%04d", b.prefix(), kind, i), "c1"
	})
}

// createDevices creates one user, bench-<run>-<role>, with n clients, and
// returns the credentials of those that were created.
func (b *bench) createDevices(ctx context.Context, role string, n int) ([]createdClient, error) {
	user := b.prefix() + role
	return b.create(ctx, n, func(i int) (string, string) { return user, fmt.Sprintf("c%05d", i) })
}

// create creates n clients named by name (creating their users) and returns the
// credentials of those that were created. The first creation runs alone so that
// a wrong admin token or URL fails fast, and so that it creates a shared user
// before the others use it. Each user is recorded before it is asked for, so
// that cleanup removes it even if the answer is lost.
func (b *bench) create(ctx context.Context, n int, name func(i int) (user, client string)) ([]createdClient, error) {
	out := make([]createdClient, n)
	ok := make([]bool, n)
	create := func(i int) error {
		user, client := name(i)
		b.mu.Lock()
		b.users[user] = true
		b.mu.Unlock()
		c, err := b.api.createClient(ctx, user, client)
		if err != nil {
			return err
		}
		out[i], ok[i] = c, true
		return nil
	}
	if err := create(0); err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	forEach(ctx, n-1, b.o.Concurrency, func(i int) {
		if err := create(i + 1); err != nil {
			b.fail("create client", err)
		}
	})
	var creds []createdClient
	for i := range out {
		if ok[i] {
			creds = append(creds, out[i])
		}
	}
	return creds, ctx.Err()
}

// cleanup closes every socket and, unless -keep, removes the bench users: those
// it recorded, then any other user whose name has this run's prefix (a creation
// the server committed after the bench gave up on it). It has its own time
// bound so that it also runs after the run's context ended (timeout, Ctrl-C).
func (b *bench) cleanup(ctx context.Context) {
	interrupted := ctx.Err() != nil
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	b.mu.Lock()
	clients, users := b.clients, b.users
	b.clients, b.users = nil, map[string]bool{}
	b.mu.Unlock()
	forEach(ctx, len(clients), 256, func(i int) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		clients[i].c.Close(cctx)
	})
	if b.o.Keep {
		if len(users) > 0 {
			fmt.Fprintf(b.note, "mimids %s: kept %s named %s* (-keep)\n", b.name, nUsers(len(users)), b.prefix())
		}
		return
	}
	if interrupted && len(users) > 0 {
		fmt.Fprintf(b.note, "mimids %s: stopped early; removing %s named %s* (a second Ctrl-C leaves them)\n", b.name, nUsers(len(users)), b.prefix())
	}
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	failed := b.removeUsers(ctx, names)
	if len(users) > 0 {
		// The sweep: what the list still shows under this run's prefix.
		left, err := b.api.listUsers(ctx)
		if err != nil {
			fmt.Fprintf(b.note, "mimids %s: could not check that no user named %s* is left: %v\n", b.name, b.prefix(), err)
		}
		var stray []string
		for _, u := range left {
			if strings.HasPrefix(u, b.prefix()) {
				stray = append(stray, u)
			}
		}
		failed += b.removeUsers(ctx, stray)
	}
	if failed > 0 {
		fmt.Fprintf(b.note, "mimids %s: %s named %s* could not be removed (mimids user list shows them)\n", b.name, nUsers(failed), b.prefix())
	}
}

func nUsers(n int) string {
	if n == 1 {
		return "1 user"
	}
	return fmt.Sprintf("%d users", n)
}

// removeUsers removes users (one already gone counts as removed) and returns
// how many could not be removed, or were not tried before the time ran out.
func (b *bench) removeUsers(ctx context.Context, users []string) int {
	var removed atomic.Int64
	forEach(ctx, len(users), b.o.Concurrency, func(i int) {
		if err := b.api.removeUser(ctx, users[i]); err == nil {
			removed.Add(1)
		}
	})
	return len(users) - int(removed.Load())
}
