package mls

import (
	"fmt"
	"slices"
	"testing"
)

type treeMathVector struct {
	NLeaves uint32    `json:"n_leaves"`
	NNodes  uint32    `json:"n_nodes"`
	Root    uint32    `json:"root"`
	Left    []*uint32 `json:"left"`
	Right   []*uint32 `json:"right"`
	Parent  []*uint32 `json:"parent"`
	Sibling []*uint32 `json:"sibling"`
}

func TestTreeMathVectors(t *testing.T) {
	var vs []treeMathVector
	loadCodecVectors(t, "tree-math.json", &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vs {
		t.Run(fmt.Sprint(v.NLeaves), func(t *testing.T) {
			if got := tmNodeWidth(v.NLeaves); got != v.NNodes {
				t.Fatalf("n_nodes = %d, want %d", got, v.NNodes)
			}
			if got := tmRoot(v.NLeaves); got != v.Root {
				t.Fatalf("root = %d, want %d", got, v.Root)
			}
			for name, arr := range map[string][]*uint32{"left": v.Left, "right": v.Right,
				"parent": v.Parent, "sibling": v.Sibling} {
				if uint32(len(arr)) != v.NNodes {
					t.Fatalf("%s has %d entries, want %d", name, len(arr), v.NNodes)
				}
			}
			for x := uint32(0); x < v.NNodes; x++ {
				checkOpt(t, "left", x, v.Left[x], func() (uint32, bool) { return tmLeft(x) })
				checkOpt(t, "right", x, v.Right[x], func() (uint32, bool) { return tmRight(x) })
				checkOpt(t, "parent", x, v.Parent[x], func() (uint32, bool) { return tmParent(x, v.NLeaves) })
				checkOpt(t, "sibling", x, v.Sibling[x], func() (uint32, bool) { return tmSibling(x, v.NLeaves) })
			}
		})
	}
}

func checkOpt(t *testing.T, name string, x uint32, want *uint32, f func() (uint32, bool)) {
	t.Helper()
	got, ok := f()
	switch {
	case want == nil && ok:
		t.Errorf("%s(%d) = %d, want none", name, x, got)
	case want != nil && !ok:
		t.Errorf("%s(%d) = none, want %d", name, x, *want)
	case want != nil && got != *want:
		t.Errorf("%s(%d) = %d, want %d", name, x, got, *want)
	}
}

func TestTreeMathPaths(t *testing.T) {
	// The 8-leaf tree of RFC 9420 Appendix C.
	tests := []struct {
		x       uint32
		direct  []uint32
		copath  []uint32
		with    uint32
		ancestr uint32
	}{
		{0, []uint32{1, 3, 7}, []uint32{2, 5, 11}, 2, 1},
		{4, []uint32{5, 3, 7}, []uint32{6, 1, 11}, 14, 7},
		{14, []uint32{13, 11, 7}, []uint32{12, 9, 3}, 10, 11},
		{7, nil, nil, 3, 7},
		{9, []uint32{11, 7}, []uint32{13, 3}, 8, 9},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.x), func(t *testing.T) {
			if got := tmDirectPath(nil, tc.x, 8); !slices.Equal(got, tc.direct) {
				t.Errorf("direct path = %v, want %v", got, tc.direct)
			}
			if got := tmCopath(nil, tc.x, 8); !slices.Equal(got, tc.copath) {
				t.Errorf("copath = %v, want %v", got, tc.copath)
			}
			if got := tmCommonAncestor(tc.x, tc.with); got != tc.ancestr {
				t.Errorf("common ancestor with %d = %d, want %d", tc.with, got, tc.ancestr)
			}
		})
	}
	if _, ok := tmParent(15, 8); ok {
		t.Error("parent of a node outside the tree")
	}
}
