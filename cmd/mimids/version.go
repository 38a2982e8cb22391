package main

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/mimids/mimids/cmd/internal/usage"
)

// releaseVersion is the version this tree will be released as.
const releaseVersion = "0.1.0-dev"

// buildVersion is what the binary knows of how it was built.
type buildVersion struct {
	Module    string // module path
	Version   string // module version: "(devel)" for a build from a checkout
	Revision  string // VCS revision, "" when not stamped
	Time      string // VCS commit time
	Modified  bool   // the checkout had uncommitted changes
	GoVersion string
}

// readBuildVersion reads the build information of the running binary.
func readBuildVersion() buildVersion {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return buildVersion{}
	}
	v := buildVersion{Module: bi.Main.Path, Version: bi.Main.Version, GoVersion: bi.GoVersion}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func (v buildVersion) print(w io.Writer) {
	or := func(s, alt string) string {
		if s == "" {
			return alt
		}
		return s
	}
	fmt.Fprintf(w, "mimids %s\n", releaseVersion)
	fmt.Fprintf(w, "module:   %s %s\n", or(v.Module, "(unknown)"), or(v.Version, "(unknown)"))
	switch {
	case v.Revision == "":
		fmt.Fprintln(w, "revision: unknown (not stamped: built with -buildvcs=false, from a git worktree, or outside a checkout)")
	case v.Modified:
		fmt.Fprintf(w, "revision: %s (%s), with uncommitted changes\n", v.Revision, or(v.Time, "time unknown"))
	default:
		fmt.Fprintf(w, "revision: %s (%s)\n", v.Revision, or(v.Time, "time unknown"))
	}
	fmt.Fprintf(w, "go:       %s\n", or(v.GoVersion, "(unknown)"))
}

var versionHelp = usage.Help{Name: "version",
	Summary: "Prints the version, the module version, the VCS revision it was built from and the Go version.",
	Example: "version"}

func versionCommand(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if usage.IsHelp(args[0]) {
			versionHelp.Print(stdout, nil)
			return 0
		}
		usage.Fail(stderr, versionHelp, fmt.Errorf("unexpected arguments %q (it takes none)", args))
		return 2
	}
	readBuildVersion().print(stdout)
	return 0
}
