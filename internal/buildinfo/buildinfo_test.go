package buildinfo_test

import (
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/buildinfo"
	"spillway/internal/testservers"
)

func TestFromBuildInfo(t *testing.T) {
	for _, tc := range []struct {
		name string
		bi   debug.BuildInfo
		want buildinfo.Info
		line string
	}{
		{
			name: "go run or go test",
			bi:   debug.BuildInfo{Main: debug.Module{Path: "spillway", Version: "(devel)"}},
			want: buildinfo.Info{Version: buildinfo.Devel},
			line: "(devel)",
		},
		{
			name: "no version at all",
			bi:   debug.BuildInfo{},
			want: buildinfo.Info{Version: buildinfo.Devel},
			line: "(devel)",
		},
		{
			name: "built in a clean checkout",
			bi: debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261206010203-0123456789ab"}, Settings: []debug.BuildSetting{
				{Key: "vcs", Value: "git"},
				{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
				{Key: "vcs.time", Value: "2026-12-06T01:02:03Z"},
				{Key: "vcs.modified", Value: "false"},
			}},
			want: buildinfo.Info{Version: "v0.0.0-20261206010203-0123456789ab", Revision: "0123456789abcdef0123456789abcdef01234567", Time: "2026-12-06T01:02:03Z"},
			line: "v0.0.0-20261206010203-0123456789ab revision 0123456789abcdef0123456789abcdef01234567 of 2026-12-06T01:02:03Z",
		},
		{
			name: "built with changes",
			bi: debug.BuildInfo{Main: debug.Module{Version: "v1.2.3+dirty"}, Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "abc"},
				{Key: "vcs.modified", Value: "true"},
			}},
			want: buildinfo.Info{Version: "v1.2.3+dirty", Revision: "abc", Modified: true},
			line: "v1.2.3+dirty revision abc (modified)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := buildinfo.FromBuildInfo(&tc.bi)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.line, got.String())
		})
	}
}

// TestReadInATestBinary: test binaries carry no VCS stamp, and say so
// without failing.
func TestReadInATestBinary(t *testing.T) {
	info := buildinfo.Read()
	assert.NotEmpty(t, info.Version)
	assert.Empty(t, info.Revision)
}

// TestBuiltBinariesCarryTheRevision builds each binary in the
// repository, as make build does, and checks that --version reports the
// commit checked out.
func TestBuiltBinariesCarryTheRevision(t *testing.T) {
	head := testservers.GitHead(t)
	for _, p := range []testservers.Program{testservers.CLI, testservers.LocalServer} {
		t.Run(p.Name, func(t *testing.T) {
			bin := testservers.Build(t, p)
			out, err := exec.Command(bin, "--version").Output()
			require.NoError(t, err)
			line := strings.TrimSpace(string(out))
			assert.True(t, strings.HasPrefix(line, p.Name+" v"), "a pseudo-version or a tag: %q", line)
			assert.Contains(t, line, " revision "+head, "the binary must carry the checked-out commit")
		})
	}
}
