package mlstool

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mimids/mimids/mls"
)

// tsmlsReplayFixture is the part of a ts-mls fixture (mls/testdata/tsmls)
// the replay test uses.
type tsmlsReplayFixture struct {
	Initial struct {
		GroupInfo         string `json:"group_info"`
		GroupInfoWithTree string `json:"group_info_with_tree"`
		RatchetTree       string `json:"ratchet_tree"`
	} `json:"initial"`
	Steps []struct {
		Kind       string `json:"kind"`
		WireFormat string `json:"wire_format"`
		Message    string `json:"message"`
		After      *struct {
			Epoch    uint64 `json:"epoch"`
			TreeHash string `json:"tree_hash"`
			Members  []struct {
				LeafIndex uint32 `json:"leaf_index"`
				Identity  string `json:"identity"`
			} `json:"members"`
		} `json:"after"`
	} `json:"steps"`
}

func readReplayFixture(t *testing.T, name string) *tsmlsReplayFixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "mls", "testdata", "tsmls", name))
	if err != nil {
		t.Fatalf("ts-mls fixture: %v", err)
	}
	var f tsmlsReplayFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

func runReplay(t *testing.T, stdin string, args ...string) (int, []mlsReplayStep, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := mlsCommand(append([]string{"replay"}, args...), strings.NewReader(stdin), &out, &errb)
	var steps []mlsReplayStep
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var s mlsReplayStep
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		steps = append(steps, s)
	}
	return code, steps, errb.String()
}

// TestMLSReplayTSMLS replays a real ts-mls group (create-2.json: add, an
// Update proposal committed by reference, a path commit, a remove) and
// compares each commit's epoch, tree hash and members with the fixture.
func TestMLSReplayTSMLS(t *testing.T) {
	f := readReplayFixture(t, "create-2.json")
	var lines []string
	for _, s := range f.Steps {
		lines = append(lines, s.Message)
	}
	dir := t.TempDir()
	msgs := filepath.Join(dir, "messages.hex")
	os.WriteFile(msgs, []byte("# create-2\n"+strings.Join(lines, "\n")+"\n"), 0o600)
	giFile := filepath.Join(dir, "gi.hex")
	os.WriteFile(giFile, []byte(f.Initial.GroupInfo), 0o600)
	cases := []struct {
		name  string
		stdin string
		args  []string
	}{
		{"GroupInfo first on stdin", f.Initial.GroupInfoWithTree + "\n" + strings.Join(lines, "\n"), nil},
		{"-group-info file and separate -tree", "", []string{"-group-info", "@" + giFile, "-tree", f.Initial.RatchetTree, msgs}},
		{"-group-info hex with tree, stdin", strings.Join(lines, "\n"), []string{"-group-info", f.Initial.GroupInfoWithTree, "-"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runReplay(t, tc.stdin, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if len(out) != 1+len(f.Steps) || out[0].Kind != "group_info" || out[0].Epoch != 0 {
				t.Fatalf("%d output lines, first %+v", len(out), out[0])
			}
			for i, s := range f.Steps {
				got := out[i+1]
				if s.WireFormat == "mls_private_message" {
					if got.Kind != "private_message" {
						t.Fatalf("step %d: kind %q", i, got.Kind)
					}
					continue
				}
				if got.Kind != s.Kind {
					t.Fatalf("step %d: kind %q, want %q", i, got.Kind, s.Kind)
				}
				if s.After == nil {
					continue
				}
				if got.Epoch != s.After.Epoch || got.TreeHash != s.After.TreeHash || len(got.Members) != len(s.After.Members) {
					t.Fatalf("step %d: epoch %d tree %s members %d; want %d %s %d", i, got.Epoch, got.TreeHash,
						len(got.Members), s.After.Epoch, s.After.TreeHash, len(s.After.Members))
				}
				for j, m := range s.After.Members {
					if got.Members[j].LeafIndex != m.LeafIndex || got.Members[j].IdentityText != m.Identity {
						t.Fatalf("step %d member %d: %+v, want %+v", i, j, got.Members[j], m)
					}
				}
			}
		})
	}
}

func TestMLSReplayFailures(t *testing.T) {
	f := readReplayFixture(t, "create-2.json")
	commit := f.Steps[1].Message // alice adds bob
	cases := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stderr string
	}{
		{"no GroupInfo", commit, nil, 1, "must be a GroupInfo"},
		{"commit for a later epoch", f.Initial.GroupInfoWithTree + "\n" + f.Steps[5].Message, nil, 1, "epoch"},
		{"tampered signature", f.Initial.GroupInfoWithTree + "\n" + tamperSignature(t, commit), nil, 1, "bad signature"},
		{"GroupInfo without tree", f.Initial.GroupInfo, nil, 1, "no ratchet tree"},
		{"not hex", f.Initial.GroupInfoWithTree + "\nzz", nil, 1, "not hex"},
		{"bad flag", "", []string{"-nope"}, 2, "flag provided but not defined"},
		{"empty input", "", nil, 1, "no GroupInfo"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runReplay(t, tc.stdin, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.stderr)
			}
		})
	}
}

// tamperSignature flips a bit of a PublicMessage's signature.
func tamperSignature(t *testing.T, msgHex string) string {
	t.Helper()
	b, _ := hex.DecodeString(msgHex)
	m, err := mls.DecodeMLSMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	m.PublicMessage.Auth.Signature[0] ^= 1
	out, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(out)
}
