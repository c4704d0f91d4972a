package store_test

import (
	"path"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"golang.org/x/text/unicode/norm"

	"spillway/internal/uploadtest"
	"spillway/store"
)

// FuzzValidateName checks that ValidateName never panics and that anything
// it accepts is a clean, local, portable path.
func FuzzValidateName(f *testing.F) {
	for _, h := range uploadtest.HostileNames(f) {
		f.Add(h.Name)
	}
	for _, s := range []string{"a", "file.txt", "a/b/c.bin", "ünïcødé.txt", "a..b", "COM10", "10.30 notes.txt", "ノート.txt"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := store.ValidateName(name)
		if err != nil {
			require.ErrorIs(t, err, store.ErrInvalidName)
			return
		}
		require.True(t, utf8.ValidString(name), "accepted invalid UTF-8 %q", name)
		require.LessOrEqual(t, len(name), store.MaxNameLen, "accepted an overlong name")
		require.NotEmpty(t, name)
		require.False(t, strings.HasPrefix(name, "/"), "accepted an absolute name %q", name)
		require.NotContains(t, name, `\`, "accepted a backslash in %q", name)
		require.Equal(t, name, path.Clean(name), "accepted an unclean name %q", name)
		require.True(t, norm.NFC.IsNormalString(name), "accepted a name not in NFC %+q", name)
		require.False(t, strings.ContainsAny(name, `<>:"|?*`), "accepted a character Windows refuses in %q", name)
		require.True(t, filepath.IsLocal(name), "accepted a non-local name %q", name)
		for _, r := range name {
			require.False(t, unicode.IsControl(r), "accepted the control character %U in %q", r, name)
			require.False(t, unicode.Is(unicode.Cf, r), "accepted the format character %U in %q", r, name)
			require.False(t, r == '\u2028' || r == '\u2029', "accepted the line break %U in %q", r, name)
			require.False(t, defaultIgnorable(r), "accepted the invisible %U in %q", r, name)
			require.False(t, unicode.IsSpace(r) && r != ' ', "accepted the space %U in %q", r, name)
		}
		for _, seg := range strings.Split(name, "/") {
			require.NotEqual(t, "..", seg, "accepted a parent segment in %q", name)
			require.False(t, strings.HasPrefix(seg, "."), "accepted a dot segment in %q", name)
			require.LessOrEqual(t, len(seg), store.MaxSegmentLen, "accepted an overlong segment in %q", name)
			require.False(t, strings.HasSuffix(seg, " ") || strings.HasSuffix(seg, "."), "accepted a trailing space or dot in %q", name)
			require.False(t, windowsReserved(seg), "accepted the Windows device name %q", seg)
			require.False(t, strings.Trim(norm.NFKC.String(seg), `./\`) == "", "accepted a segment of dot or slash look-alikes in %q", name)
		}
	})
}

// windowsReserved is an independent statement of the device names Windows
// reserves, after Go's internal/filepathlite: the segment is cut at its
// first dot or colon and trailing spaces are dropped; COM and LPT take the
// digits 0-9 and the superscripts ¹, ² and ³.
func windowsReserved(seg string) bool {
	if i := strings.IndexAny(seg, ".:"); i >= 0 {
		seg = seg[:i]
	}
	seg = strings.TrimRight(seg, " ")
	for _, dev := range []string{"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} {
		if strings.EqualFold(seg, dev) {
			return true
		}
	}
	if len(seg) < 4 || !strings.EqualFold(seg[:3], "COM") && !strings.EqualFold(seg[:3], "LPT") {
		return false
	}
	switch seg[3:] {
	case "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "\u00b9", "\u00b2", "\u00b3":
		return true
	}
	return false
}
