// Package buildinfo reads what a binary is from the build information the
// Go toolchain stamps into it: the module version and the VCS revision.
package buildinfo

import (
	"runtime/debug"
	"strings"
)

// Devel is the version of a binary built without a module version: go run,
// a test binary, or a build outside a VCS checkout.
const Devel = "(devel)"

// Info is what a binary says it is.
type Info struct {
	// Version is the main module's version: a tag, a pseudo-version
	// (with "+dirty" when built from modified files), or Devel.
	Version string
	// Revision is the VCS commit it was built from; empty when the build
	// did not stamp one (go run, go test, -buildvcs=false, no checkout).
	Revision string
	// Time is the commit's time, in RFC 3339, when stamped.
	Time string
	// Modified reports that the checkout had uncommitted changes.
	Modified bool
}

// Read returns the running binary's Info.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: Devel}
	}
	return FromBuildInfo(bi)
}

// FromBuildInfo returns the Info that bi describes.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	info := Info{Version: bi.Main.Version}
	if info.Version == "" {
		info.Version = Devel
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// String is the one line a binary prints for --version, after its name:
// the version, then the revision, marked when modified, and its time.
func (i Info) String() string {
	var b strings.Builder
	b.WriteString(i.Version)
	if i.Revision != "" {
		b.WriteString(" revision ")
		b.WriteString(i.Revision)
		if i.Modified {
			b.WriteString(" (modified)")
		}
		if i.Time != "" {
			b.WriteString(" of ")
			b.WriteString(i.Time)
		}
	}
	return b.String()
}

// LogAttrs are the Info as key-value pairs for slog.
func (i Info) LogAttrs() []any {
	return []any{"version", i.Version, "revision", i.Revision, "modified", i.Modified, "vcs_time", i.Time}
}

// Requested reports whether a command line (without the program name)
// asks only for the version: --version, -version or version, alone.
func Requested(args []string) bool {
	if len(args) != 1 {
		return false
	}
	switch args[0] {
	case "--version", "-version", "version":
		return true
	}
	return false
}
