package usage

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
)

var help = Help{Name: "thing add", Args: "NAME [NOTE]", Summary: "Adds a thing.", Example: "thing add -n 2 box"}

func newFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("thing add", flag.ContinueOnError)
	fs.Int("n", 1, "how many")
	return fs
}

func TestParseAndArgs(t *testing.T) {
	for _, tc := range []struct {
		name         string
		args         []string
		code         int
		stdout, errs string
	}{
		{"help", []string{"-h"}, 0, "usage: mimids thing add [flags] NAME [NOTE]\n\nAdds a thing.\n\nexample:\n  mimids thing add -n 2 box\n\nflags:\n  -n int\n", ""},
		{"bad flag", []string{"-x"}, 2, "", "mimids thing add: flag provided but not defined: -x\nRun 'mimids thing add -h' for its usage.\n"},
		{"missing", nil, 2, "", "missing arguments: want NAME [NOTE]"},
		{"too many", []string{"a", "b", "c", "d"}, 2, "", `unexpected arguments ["c" "d"] after NAME [NOTE]`},
		{"fine", []string{"-n", "3", "a", "b"}, -1, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			fs := newFlags()
			code := -1
			if err := Parse(fs, help, tc.args, &stdout, &stderr); err != nil {
				code = Code(err)
			} else if err := Args(fs, help, 1, 2, &stderr); err != nil {
				code = Code(err)
			}
			if code != tc.code || !strings.HasPrefix(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.errs) ||
				(tc.stdout == "") != (stdout.Len() == 0) || (tc.errs == "") != (stderr.Len() == 0) {
				t.Errorf("code %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
			}
		})
	}
	if Code(flag.ErrHelp) != 0 || Code(errors.New("x")) != 2 {
		t.Error("Code")
	}
}

func TestPrintWithoutFlags(t *testing.T) {
	var b bytes.Buffer
	Help{Name: "version", Summary: "Prints the version."}.Print(&b, nil)
	if got := b.String(); got != "usage: mimids version\n\nPrints the version.\n" {
		t.Errorf("%q", got)
	}
}

func TestGroup(t *testing.T) {
	verbs := []Verb{{"add", "add a thing"}, {"list", "list things"}}
	for _, tc := range []struct {
		args     []string
		code     int
		ok       bool
		toStdout bool
		want     string
	}{
		{nil, 2, false, false, "usage: mimids thing add|list [flags] ...\n\nThings.\n\nverbs:\n  add   add a thing\n  list  list things\n"},
		{[]string{"help"}, 0, false, true, "usage: mimids thing add|list"},
		{[]string{"-h"}, 0, false, true, "usage: mimids thing add|list"},
		{[]string{"nope"}, 2, false, false, "mimids thing: unknown verb \"nope\"\n\nusage:"},
		{[]string{"list", "-x"}, 0, true, false, ""},
	} {
		var stdout, stderr bytes.Buffer
		code, ok := Group("thing", "Things.", verbs, tc.args, &stdout, &stderr)
		out := stderr.String()
		if tc.toStdout {
			out = stdout.String()
		}
		if code != tc.code || ok != tc.ok || !strings.HasPrefix(out, tc.want) || (tc.want == "" && stdout.Len()+stderr.Len() > 0) {
			t.Errorf("%q: code %d ok %v, stdout %q, stderr %q", tc.args, code, ok, stdout.String(), stderr.String())
		}
	}
}
