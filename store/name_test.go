package store_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"golang.org/x/text/unicode/norm"

	"spillway/store"
)

func TestValidateName(t *testing.T) {
	valid := []string{
		"a", "file.txt", "a/b/c.bin", "ünïcødé.txt", "日本語/ファイル.pdf", "with space.txt",
		"a..b", "x.tar.gz", "10.30 notes.txt", "CONSOLE.txt", "com10",
		strings.Repeat("a", store.MaxSegmentLen),
		strings.Repeat(strings.Repeat("a", 200)+"/", 6)[:store.MaxNameLen-1] + "b",
	}
	for _, name := range valid {
		assert.NoError(t, store.ValidateName(name), "%q", name)
	}
	invalid := []string{
		"", "/abs", "/", "..", ".", "../x", "a/../b", "a/..", "./a", "a/./b", "a//b", "a/", ".hidden", "a/.git/config",
		`a\b`, `..\x`, "a\x00b", "a\nb", "a\rb", "a\tb", "a\x7fb", "a\u0085b",
		"evil\u202etxt.exe", "zero\u200bwidth", "bom\ufeff",
		"a\u2215b", "a\uff0fb", "a\uff3cb", "\u2024\u2024/x", "\xff\xfe",
		"trailing.", "trailing ", "dir./x", "C:", "c:/windows", "C:file",
		"CON", "con.txt", "aux", "NUL.tar.gz", "COM1", "lpt9.log", "dir/PRN", "COM0", "LPT0",
		"10:30 notes.txt", "a.txt:evil", "x/C:y", "a<b", "a>b", `a"b`, "a|b", "a?b", "a*b",
		"\ua4f8\ua4f8/x", "\u0660\u0660/x", "a\ufe0fb", "a\u180bb", "\u2800", "a\u00a0b", "cafe\u0301.txt",
		strings.Repeat("a", store.MaxSegmentLen+1),
		strings.Repeat("a/", store.MaxNameLen/2) + "b",
	}
	for _, name := range invalid {
		assert.ErrorIs(t, store.ValidateName(name), store.ErrInvalidName, "%q", name)
	}
}

func TestPlainASCIIAgreesWithCheckRunes(t *testing.T) {
	// The shortcut may pass only what the full check passes, and should
	// pass every ASCII name that it does.
	for c := range 0x80 {
		name := "a" + string(rune(c)) + "b"
		full := store.CheckRunes(name) == nil && norm.NFC.IsNormalString(name)
		assert.Equal(t, full, store.PlainASCII(name), "%q", name)
	}
	assert.False(t, store.PlainASCII("caf\u00e9"), "beyond ASCII the full check decides")
}

func BenchmarkValidateName(b *testing.B) {
	for _, name := range []string{"s012-0000345.bin", "reports/2026/ünïcødé.txt"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := store.ValidateName(name); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestValidatePrefix(t *testing.T) {
	valid := []string{
		"", "a", "a/", "a/b/", "a/b/c", "2026/rep", "dir.", "dir ", "CON", "a/CO",
		strings.Repeat("a", store.MaxSegmentLen),
		strings.Repeat(strings.Repeat("a", 200)+"/", 5),
	}
	for _, p := range valid {
		assert.NoError(t, store.ValidatePrefix(p), "%q", p)
	}
	invalid := []string{
		"/", "/a", "//", "a//", "a//b", ".", ".spillway/", ".spillway-uploads/x", "a/.", "a/.git", "../", "a/../",
		"a\\b", "a\x00", "a\n", "evil\u202e", "a\u2215", "\xff", "dir./", "dir /x", "C:", "C:/", "CON/", "a/NUL/", "COM0/", "cafe\u0301", "a:b",
		strings.Repeat("a", store.MaxSegmentLen+1),
		strings.Repeat("a/", store.MaxNameLen/2) + "b",
	}
	for _, p := range invalid {
		assert.ErrorIs(t, store.ValidatePrefix(p), store.ErrInvalidName, "%q", p)
	}
}
