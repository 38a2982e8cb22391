package mls

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVectorFilesUnchanged checks the conformance vectors kept in the repository's
// testdata/ (the MLS working group's and the RFC 9458/9292 examples) against
// testdata/SHA256SUMS: a missing or changed file fails, naming the file. Where the
// team's reference copy (../shared/testdata beside the checkout) exists, the files
// must also be byte-identical to it; a fresh clone has no such copy and checks the
// manifest alone.
func TestVectorFilesUnchanged(t *testing.T) {
	root := filepath.Join("..", "testdata")
	sums, err := os.ReadFile(filepath.Join(root, "SHA256SUMS"))
	if err != nil {
		t.Fatalf("testdata/SHA256SUMS: %v", err)
	}
	listed := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(sums))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		want, name, ok := strings.Cut(line, "  ")
		if !ok || len(want) != 64 {
			t.Fatalf("testdata/SHA256SUMS: bad line %q", line)
		}
		listed[name] = true
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Errorf("vector file testdata/%s is missing: %v", name, err)
			continue
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != want {
			t.Errorf("vector file testdata/%s changed: sha256 %s, want %s", name, got, want)
		}
		ref := filepath.Join("..", "..", "shared", "testdata", name)
		if rb, err := os.ReadFile(ref); err == nil && !bytes.Equal(rb, b) {
			t.Errorf("vector file testdata/%s differs from %s", name, ref)
		}
	}
	if len(listed) < 20 {
		t.Fatalf("testdata/SHA256SUMS lists %d files; the MLS and OHTTP vectors are more", len(listed))
	}
	for _, dir := range []string{"mls", "ohttp"} {
		ents, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil {
			t.Fatalf("testdata/%s: %v", dir, err)
		}
		for _, e := range ents {
			if name := dir + "/" + e.Name(); !listed[name] {
				t.Errorf("testdata/%s is not listed in testdata/SHA256SUMS", name)
			}
		}
	}
}
