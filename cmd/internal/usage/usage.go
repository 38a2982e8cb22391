// Package usage is how every mimids verb answers -h and refuses bad input: the
// help (a usage line, one line of what the verb does, one example, the verb's own
// flags) goes to stdout with exit 0; a problem goes to stderr with a pointer to
// the help and exit 2. It is shared by cmd/mimids, cmd/bench and cmd/mlstool.
package usage

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Help describes one verb.
type Help struct {
	Name    string // the verb as typed after "mimids", e.g. "client add"
	Args    string // positional arguments after [flags], e.g. "USER CLIENT"; "" for none
	Summary string // one line: what the verb does
	Example string // one command line, without the leading "mimids "
	Details string // optional paragraphs printed after the example
}

// Print writes the help and the flags defined on fs (none: says so) to w.
func (h Help) Print(w io.Writer, fs *flag.FlagSet) {
	line := "mimids " + h.Name
	n := 0
	if fs != nil {
		fs.VisitAll(func(*flag.Flag) { n++ })
	}
	if n > 0 {
		line += " [flags]"
	}
	if h.Args != "" {
		line += " " + h.Args
	}
	fmt.Fprintf(w, "usage: %s\n\n%s\n", line, h.Summary)
	if h.Example != "" {
		fmt.Fprintf(w, "\nexample:\n  mimids %s\n", h.Example)
	}
	if h.Details != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(h.Details, "\n"))
	}
	if n == 0 {
		return
	}
	fmt.Fprint(w, "\nflags:\n")
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
}

// Parse parses args into fs. For -h or -help it prints the help to stdout and
// returns flag.ErrHelp; for a bad flag it prints the problem to stderr and
// returns the error. Code turns either into an exit code.
func Parse(fs *flag.FlagSet, h Help, args []string, stdout, stderr io.Writer) error {
	fs.SetOutput(io.Discard) // the flag package would print the whole help on any error
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		h.Print(stdout, fs)
		return err
	case err != nil:
		Fail(stderr, h, err)
		return err
	}
	return nil
}

// Args checks the number of positional arguments left in fs after Parse: at
// least min and at most max (max < 0: no limit). On failure it prints the
// problem to stderr and returns an error.
func Args(fs *flag.FlagSet, h Help, min, max int, stderr io.Writer) error {
	n := fs.NArg()
	var err error
	switch {
	case n < min:
		err = fmt.Errorf("missing arguments: want %s", h.Args)
	case max == 0 && n > 0:
		err = fmt.Errorf("unexpected arguments %q (it takes none)", fs.Args())
	case max > 0 && n > max:
		err = fmt.Errorf("unexpected arguments %q after %s", fs.Args()[max:], h.Args)
	}
	if err != nil {
		Fail(stderr, h, err)
	}
	return err
}

// Fail prints a usage problem of verb h to w.
func Fail(w io.Writer, h Help, err error) {
	fmt.Fprintf(w, "mimids %s: %v\nRun 'mimids %s -h' for its usage.\n", h.Name, err, h.Name)
}

// Code is the exit code of a Parse or Args error: 0 for help, 2 for a usage
// problem.
func Code(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// IsHelp reports whether word asks for help instead of naming a verb.
func IsHelp(word string) bool {
	switch word {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// Verb is one verb of a group, for the group's help.
type Verb struct {
	Name, Summary string
}

// Group answers for a command with verbs (e.g. "mimids user"): with no word it
// prints the verbs to stderr (2); with a help word, to stdout (0); with a word
// that is not a verb, the problem and the verbs to stderr (2). ok is true when
// args[0] names a verb, which the caller then runs.
func Group(name, summary string, verbs []Verb, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	print := func(w io.Writer) {
		names := make([]string, len(verbs))
		width := 0
		for i, v := range verbs {
			names[i] = v.Name
			width = max(width, len(v.Name))
		}
		fmt.Fprintf(w, "usage: mimids %s %s [flags] ...\n\n%s\n\nverbs:\n", name, strings.Join(names, "|"), summary)
		for _, v := range verbs {
			fmt.Fprintf(w, "  %-*s  %s\n", width, v.Name, v.Summary)
		}
		fmt.Fprintf(w, "\nRun 'mimids %s VERB -h' for a verb's flags and an example.\n", name)
	}
	if len(args) == 0 {
		print(stderr)
		return 2, false
	}
	if IsHelp(args[0]) {
		print(stdout)
		return 0, false
	}
	for _, v := range verbs {
		if v.Name == args[0] {
			return 0, true
		}
	}
	fmt.Fprintf(stderr, "mimids %s: unknown verb %q\n\n", name, args[0])
	print(stderr)
	return 2, false
}
