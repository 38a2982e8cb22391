// Command notices is the smallest useful program on the Go client library: it connects
// one device to its provider, prints every mailbox entry as it arrives (the stored
// ones first), acknowledges each once printed, and stops after -for or on Ctrl-C. The
// README's "Using client/ from another module" snippet is this file's receive
// function.
//
//	go run ./docs/examples/notices -url ws://127.0.0.1:8080/v1/socket -token mdt_... -for 3s
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mimids/mimids/client"
)

func main() {
	url := flag.String("url", "ws://127.0.0.1:8080/v1/socket", "the provider's client socket")
	token := flag.String("token", "", "the device token (mdt_...), from `mimids client add`")
	wait := flag.Duration("for", 0, "stop after this long (0: run until interrupted)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *wait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *wait)
		defer cancel()
	}
	if err := receive(ctx, *url, *token); err != nil {
		fmt.Fprintln(os.Stderr, "notices:", err)
		os.Exit(1)
	}
}

// receive prints the client's mailbox until ctx ends.
func receive(ctx context.Context, url, token string) error {
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := client.Dial(dialCtx, client.Config{ // connects and sends the auth frame
		URL:   url,
		Token: token,
		// Called once per entry, in seq order, duplicates dropped. Returning nil
		// acknowledges the entry (coalesced ack frames); an error leaves it in the
		// mailbox and reconnects, so the server delivers it again.
		Handler: func(ctx context.Context, d *client.Delivery) error {
			if n, err := d.Notice(); err == nil {
				fmt.Printf("%d notice: %s\n", d.Seq, n.Text)
			} else {
				fmt.Printf("%d %s: %d bytes\n", d.Seq, d.Kind, len(d.Payload))
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	fmt.Printf("connected as %s, %d waiting\n", c.Session().ClientID, c.Session().Pending)
	select {
	case <-ctx.Done():
	case <-c.Done(): // stopped for good: token refused or revoked
		return c.Err()
	}
	closeCtx, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	return c.Close(closeCtx) // flushes the pending acks, then closes normally
}
