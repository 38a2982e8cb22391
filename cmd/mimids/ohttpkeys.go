package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/mimids/mimids/cmd/provider"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/sqlite"
)

func keysCommand(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	verb, rest := sub(args)
	var grace *time.Duration
	setup := func(fs *flag.FlagSet) {
		grace = fs.Duration("grace", 24*time.Hour, "how long a retired key keeps working")
	}
	switch verb {
	case "list", "rotate":
		return storeCommand("keys "+verb, rest, stdout, stderr, setup, func(ctx context.Context, _ Config, db *sqlite.DB, _ *directory.Directory, _ []string) error {
			now := time.Now()
			ks, err := provider.LoadKeySet(ctx, db, *grace, now)
			if err != nil {
				return err
			}
			if verb == "rotate" {
				k, err := provider.RotateKey(ctx, db, ks, now)
				if err != nil {
					return err
				}
				if err := db.RecordChange(ctx, provider.ChangeOHTTPKeys, 0, now); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "new current key %d; older keys stay valid for %s\n", k.ID(), *grace)
			}
			for _, st := range ks.States() {
				state := "current"
				if !st.Retired.IsZero() {
					state = "retired " + st.Retired.Format(time.RFC3339) + ", expires " + st.Expires.Format(time.RFC3339)
				}
				fmt.Fprintf(stdout, "key %d\tcreated %s\t%s\n", st.Key.ID(), st.Key.Created().Format(time.RFC3339), state)
			}
			return nil
		})
	}
	fmt.Fprintln(stderr, "usage: mimids keys list|rotate [-grace DURATION] [flags]")
	return 2
}
