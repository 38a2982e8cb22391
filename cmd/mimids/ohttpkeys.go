package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/mimids/mimids/cmd/internal/usage"
	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/directory"
)

var keysGroup = group{name: "keys", summary: "Manages the Oblivious HTTP gateway's keys (the first one is made on first use).", verbs: []verb{
	{Help: usage.Help{Name: "keys list", Summary: "Lists the gateway keys: id, creation time, and whether current or retired.",
		Example: "keys list -data ./data"},
		setup: keys(false)},
	{Help: usage.Help{Name: "keys rotate", Summary: "Makes a new current gateway key; the older ones keep working for -grace.",
		Example: "keys rotate -data ./data -grace 48h"},
		setup: keys(true)},
}}

func keys(rotate bool) func(fs *flag.FlagSet) action {
	return func(fs *flag.FlagSet) action {
		grace := fs.Duration("grace", 24*time.Hour, "how long a retired key keeps working")
		return func(ctx context.Context, e env, _ []string) error {
			now := time.Now()
			gk := directory.NewGatewayKeys(e.db, *grace)
			ks, err := gk.Load(ctx, now)
			if err != nil {
				return err
			}
			if rotate {
				k, err := gk.Rotate(ctx, ks, now)
				if err != nil {
					return err
				}
				if err := e.dir.RecordChange(ctx, directory.Change{Kind: provider.ChangeOHTTPKeys}); err != nil {
					return err
				}
				fmt.Fprintf(e.out, "new current key %d; older keys stay valid for %s\n", k.ID(), *grace)
			}
			for _, st := range ks.States() {
				state := "current"
				if !st.Retired.IsZero() {
					state = "retired " + st.Retired.Format(time.RFC3339) + ", expires " + st.Expires.Format(time.RFC3339)
				}
				fmt.Fprintf(e.out, "key %d\tcreated %s\t%s\n", st.Key.ID(), st.Key.Created().Format(time.RFC3339), state)
			}
			return nil
		}
	}
}
