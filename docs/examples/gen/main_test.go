package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestSamplesUpToDate regenerates the samples and compares them with the committed
// docs/examples/mls, naming any file that is missing or differs (run
// `go run ./docs/examples/gen` after the ts-mls fixtures change).
func TestSamplesUpToDate(t *testing.T) {
	dir := t.TempDir()
	if err := generate(filepath.Join("..", "..", "..", "mls", "testdata", "tsmls"), dir); err != nil {
		t.Fatal(err)
	}
	fresh, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh) == 0 {
		t.Fatal("generate wrote nothing")
	}
	for _, e := range fresh {
		want, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		got, err := os.ReadFile(filepath.Join("..", "mls", e.Name()))
		if err != nil {
			t.Errorf("docs/examples/mls/%s: %v (run go run ./docs/examples/gen)", e.Name(), err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("docs/examples/mls/%s is stale (run go run ./docs/examples/gen)", e.Name())
		}
	}
}
