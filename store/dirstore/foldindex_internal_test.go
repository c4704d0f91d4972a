package dirstore

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// TestFoldKeyIsEqualFold: two names have one fold key exactly when
// strings.EqualFold calls them equal, for every rune, whole names, and
// invalid UTF-8.
func TestFoldKeyIsEqualFold(t *testing.T) {
	key := func(s string) string { return string(appendFold(nil, s)) }
	first := map[string]rune{}
	// Every rune with a case fold lies below lastFolded.
	const lastFolded = 0x20000
	require.Equal(t, rune('a'), unicode.SimpleFold('A'))
	for r := rune(lastFolded); r <= unicode.MaxRune; r += 97 {
		require.Equal(t, r, unicode.SimpleFold(r), "%U folds", r)
	}
	for r := rune(0); r < lastFolded; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		k := key(string(r))
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			require.Equal(t, k, key(string(f)), "%U and %U", r, f)
		}
		if o, ok := first[k]; ok {
			require.True(t, strings.EqualFold(string(o), string(r)), "%U and %U share a key", o, r)
		} else {
			first[k] = r
		}
	}
	for _, tc := range []struct {
		a, b  string
		equal bool
	}{
		{"Readme.TXT", "readme.txt", true},
		{"readme.txt", "readme.txt", true},
		{"\u212Aelvin", "kelvin", true},
		{"\u017Fun", "SUN", true},
		{"Straße", "STRAẞE", true},
		{"Straße", "STRASSE", false},
		{"a\xffb", "a\xfeb", true}, // EqualFold decodes both as U+FFFD
		{"a\xffb", "a\uFFFDb", true},
		{"ab", "abc", false},
		{"été", "ÉTÉ", true},
	} {
		require.Equal(t, tc.equal, strings.EqualFold(tc.a, tc.b), "%q %q", tc.a, tc.b)
		require.Equal(t, tc.equal, key(tc.a) == key(tc.b), "%q %q", tc.a, tc.b)
	}
}

// TestFoldKeyOfLowerCaseIsFree: most names are their own key, folded with
// no allocation.
func TestFoldKeyOfLowerCaseIsFree(t *testing.T) {
	x := newFoldIndex()
	allocs := testing.AllocsPerRun(100, func() { x.hash("upload-000123-ÉTÉ.bin") })
	require.Zero(t, allocs)
}
