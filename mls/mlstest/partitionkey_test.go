package mlstest

import (
	"encoding/json"
	"os"
	"testing"
)

// TestPartitionKeyRuleMatchesFixtures checks that the ts-mls fixtures, and so the
// TypeScript SDK, derive partition keys with the rule this package names.
func TestPartitionKeyRuleMatchesFixtures(t *testing.T) {
	for _, f := range []string{"create-2.json", "fork.json"} {
		raw, err := os.ReadFile("../testdata/tsmls/" + f)
		if err != nil {
			t.Fatal(err)
		}
		var h struct {
			Exporter struct {
				Label   string `json:"label"`
				Context string `json:"context"`
				Length  int    `json:"length"`
			} `json:"partition_key_exporter"`
		}
		if err := json.Unmarshal(raw, &h); err != nil {
			t.Fatal(err)
		}
		if h.Exporter.Label != PartitionKeyLabel || h.Exporter.Context != "" || h.Exporter.Length != PartitionKeySize {
			t.Errorf("%s: exporter %+v, want label %q, empty context, length %d", f, h.Exporter, PartitionKeyLabel, PartitionKeySize)
		}
	}
}
