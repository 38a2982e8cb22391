package mls

import (
	"fmt"
	"testing"
)

// messageFields maps each messages.json field to the type it holds.
var messageFields = map[string]func() roundTripper{
	"mls_welcome":                       func() roundTripper { return new(MLSMessage) },
	"mls_group_info":                    func() roundTripper { return new(MLSMessage) },
	"mls_key_package":                   func() roundTripper { return new(MLSMessage) },
	"ratchet_tree":                      func() roundTripper { return new(RatchetTree) },
	"group_secrets":                     func() roundTripper { return new(GroupSecrets) },
	"add_proposal":                      func() roundTripper { return new(Add) },
	"update_proposal":                   func() roundTripper { return new(Update) },
	"remove_proposal":                   func() roundTripper { return new(Remove) },
	"pre_shared_key_proposal":           func() roundTripper { return new(PreSharedKey) },
	"re_init_proposal":                  func() roundTripper { return new(ReInit) },
	"external_init_proposal":            func() roundTripper { return new(ExternalInit) },
	"group_context_extensions_proposal": func() roundTripper { return new(GroupContextExtensions) },
	"commit":                            func() roundTripper { return new(Commit) },
	"public_message_application":        func() roundTripper { return new(MLSMessage) },
	"public_message_proposal":           func() roundTripper { return new(MLSMessage) },
	"public_message_commit":             func() roundTripper { return new(MLSMessage) },
	"private_message":                   func() roundTripper { return new(MLSMessage) },
}

// vectorMessage is one encoded value found in a vector file.
type vectorMessage struct {
	kind   string
	origin string
	data   []byte
	new    func() roundTripper
}

var kinds = map[string]func() roundTripper{
	"MLSMessage":  func() roundTripper { return new(MLSMessage) },
	"RatchetTree": func() roundTripper { return new(RatchetTree) },
	"UpdatePath":  func() roundTripper { return new(UpdatePath) },
	"Proposal":    func() roundTripper { return new(Proposal) },
}

// collectVectorMessages gathers the encoded MLSMessages, ratchet trees,
// UpdatePaths and Proposals of the vector files other than messages.json.
func collectVectorMessages(t testing.TB) []vectorMessage {
	var out []vectorMessage
	add := func(kind, origin string, b []byte) {
		if len(b) > 0 {
			out = append(out, vectorMessage{kind: kind, origin: origin, data: b, new: kinds[kind]})
		}
	}
	for _, file := range []string{"passive-client-welcome.json", "passive-client-handling-commit.json", "passive-client-random.json"} {
		var cases []struct {
			KeyPackage  hexBytes `json:"key_package"`
			Welcome     hexBytes `json:"welcome"`
			RatchetTree hexBytes `json:"ratchet_tree"`
			Epochs      []struct {
				Proposals []hexBytes `json:"proposals"`
				Commit    hexBytes   `json:"commit"`
			} `json:"epochs"`
		}
		loadCodecVectors(t, file, &cases)
		for i, c := range cases {
			o := fmt.Sprintf("%s[%d]", file, i)
			add("MLSMessage", o+".key_package", c.KeyPackage)
			add("MLSMessage", o+".welcome", c.Welcome)
			add("RatchetTree", o+".ratchet_tree", c.RatchetTree)
			for j, e := range c.Epochs {
				for k, p := range e.Proposals {
					add("MLSMessage", fmt.Sprintf("%s.epochs[%d].proposals[%d]", o, j, k), p)
				}
				add("MLSMessage", fmt.Sprintf("%s.epochs[%d].commit", o, j), e.Commit)
			}
		}
	}
	var tv []struct {
		Tree hexBytes `json:"tree"`
	}
	loadCodecVectors(t, "tree-validation.json", &tv)
	for i, c := range tv {
		add("RatchetTree", fmt.Sprintf("tree-validation.json[%d]", i), c.Tree)
	}
	var to []struct {
		Proposal   hexBytes `json:"proposal"`
		TreeBefore hexBytes `json:"tree_before"`
		TreeAfter  hexBytes `json:"tree_after"`
	}
	loadCodecVectors(t, "tree-operations.json", &to)
	for i, c := range to {
		o := fmt.Sprintf("tree-operations.json[%d]", i)
		add("Proposal", o+".proposal", c.Proposal)
		add("RatchetTree", o+".tree_before", c.TreeBefore)
		add("RatchetTree", o+".tree_after", c.TreeAfter)
	}
	var tk []struct {
		RatchetTree hexBytes `json:"ratchet_tree"`
		UpdatePaths []struct {
			UpdatePath hexBytes `json:"update_path"`
		} `json:"update_paths"`
	}
	loadCodecVectors(t, "treekem.json", &tk)
	for i, c := range tk {
		o := fmt.Sprintf("treekem.json[%d]", i)
		add("RatchetTree", o+".ratchet_tree", c.RatchetTree)
		for j, u := range c.UpdatePaths {
			add("UpdatePath", fmt.Sprintf("%s.update_paths[%d]", o, j), u.UpdatePath)
		}
	}
	var wl []struct {
		KeyPackage hexBytes `json:"key_package"`
		Welcome    hexBytes `json:"welcome"`
	}
	loadCodecVectors(t, "welcome.json", &wl)
	for i, c := range wl {
		add("MLSMessage", fmt.Sprintf("welcome.json[%d].key_package", i), c.KeyPackage)
		add("MLSMessage", fmt.Sprintf("welcome.json[%d].welcome", i), c.Welcome)
	}
	return out
}
