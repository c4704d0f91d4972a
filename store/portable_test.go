package store_test

import (
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/text/unicode/norm"

	"spillway/store"
)

// The tests below generate their names from Unicode's tables rather than
// picking a few by hand: every code point of a class must be refused, and
// every letter of every script accepted.

// refuse asserts that ValidateName refuses every name, and counts them.
func refuse(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if !assert.ErrorIs(t, store.ValidateName(n), store.ErrInvalidName, "%+q", n) {
			t.FailNow()
		}
	}
}

// eachRune calls fn for every valid code point (surrogates cannot be
// encoded in UTF-8).
func eachRune(fn func(r rune)) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if utf8.ValidRune(r) {
			fn(r)
		}
	}
}

func TestRefusesEveryInvisibleOrBlankCodePoint(t *testing.T) {
	classes := map[string]func(r rune) bool{
		"Cc (C0 and C1 controls)":      func(r rune) bool { return unicode.Is(unicode.Cc, r) },
		"Cf (format)":                  func(r rune) bool { return unicode.Is(unicode.Cf, r) },
		"Zs, Zl, Zp but U+0020":        func(r rune) bool { return unicode.In(r, unicode.Zs, unicode.Zl, unicode.Zp) && r != ' ' },
		"White_Space but U+0020":       func(r rune) bool { return unicode.Is(unicode.White_Space, r) && r != ' ' },
		"Default_Ignorable_Code_Point": defaultIgnorable,
		"Variation_Selector":           func(r rune) bool { return unicode.Is(unicode.Variation_Selector, r) },
		"braille pattern blank U+2800": func(r rune) bool { return r == '\u2800' },
	}
	total := 0
	eachRune(func(r rune) {
		for _, in := range classes {
			if in(r) {
				s := string(r)
				refuse(t, s, "a"+s+"b.txt", "dir/"+s+"x", "x"+s)
				total++
				return
			}
		}
	})
	t.Logf("%d invisible, blank or control code points refused", total)
	require.Greater(t, total, 4000, "Default_Ignorable alone has thousands")
}

// defaultIgnorable is Unicode's derived Default_Ignorable_Code_Point
// (DerivedCoreProperties.txt): Other_Default_Ignorable_Code_Point, Cf and
// Variation_Selector, less White_Space, U+FFF9..U+FFFB, U+13430..U+1343F
// and Prepended_Concatenation_Mark.
func defaultIgnorable(r rune) bool {
	in := unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) ||
		unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Variation_Selector, r)
	out := unicode.Is(unicode.White_Space, r) || 0xFFF9 <= r && r <= 0xFFFB ||
		0x13430 <= r && r <= 0x1343F || unicode.Is(unicode.Prepended_Concatenation_Mark, r)
	return in && !out
}

// TestRefusesLookalikes checks the generated table against an independent
// derivation (every code point whose compatibility form is made of dots
// and slashes) and the look-alikes the hostile run used, then that each is
// refused: alone, doubled before a slash, and, but for the letters and
// digits of a script, inside a word.
func TestRefusesLookalikes(t *testing.T) {
	var want []rune
	eachRune(func(r rune) {
		if r > unicode.MaxASCII && unicode.IsPrint(r) {
			if s := norm.NFKC.String(string(r)); s != "" && strings.Trim(s, `./\`) == "" {
				want = append(want, r)
			}
		}
	})
	want = append(want, 0xA4F8, 0x0701, 0xA60E, 0x0660, 0x3033, 0x1735, 0x31D4, 0x2F02, // the hostile run's
		0x2024, 0x2025, 0x2026, 0x2215, 0x2044, 0xFF0F, 0x29F8, 0x2571, 0x27CB, 0x2F03, 0x0338, // slashes and dots
		0xFF3C, 0xFE68, 0x2216, 0x29F5, 0x29F9, 0x2572, 0x27CD, 0x3002, 0xFF61) // backslashes, IDNA full stops
	want = append(want, store.Lookalikes...) // and those from confusables.txt
	slices.Sort(want)
	want = slices.Compact(want)
	letters := 0
	for _, r := range want {
		s := string(r)
		refuse(t, s, s+s, s+s+"/x", "x/"+s+s+"/y", s+s+s)
		if unicode.In(r, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Lo, unicode.Nd) {
			letters++
			continue
		}
		refuse(t, "a"+s+"b", "etc"+s+"passwd", s+"hidden")
	}
	t.Logf("%d look-alikes of . / \\ checked (%d letters or digits, refused only as a whole segment)", len(want), letters)
	// Letters and digits that resemble a dot or slash stay usable in words.
	for _, ok := range []string{"ノート.txt", "١٠.txt", "٢٠٢٦/تقرير.pdf", "۱۰۰.txt", "丿乂.txt"} {
		assert.NoError(t, store.ValidateName(ok), "%q", ok)
	}
}

func TestRefusesWindowsCharacters(t *testing.T) {
	n := 0
	for _, c := range `<>:"|?*` {
		s := string(c)
		refuse(t, s, "a"+s+"b", s+"a", "a"+s, "dir/a"+s+"b", "a"+s+"b/c")
		n++
	}
	refuse(t, "a.txt:evil", "a.txt::$DATA", "x/C:y", "C:x", "c:/windows")
	for _, seg := range []string{"a ", "a.", "a. ", "a..", "a .", "a\u3000"} {
		refuse(t, seg, seg+"/x", "x/"+seg)
	}
	t.Logf("%d characters refused, and trailing dots and spaces", n)
}

// TestRefusesEveryWindowsDeviceName generates every device name in every
// mix of case, with the superscript digits Windows takes for digits,
// with every one- and two-letter extension and common longer ones, in
// every position of a path.
func TestRefusesEveryWindowsDeviceName(t *testing.T) {
	var devices []string
	devices = append(devices, "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$")
	for _, p := range []string{"COM", "LPT"} {
		for _, d := range []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "\u00b9", "\u00b2", "\u00b3"} {
			devices = append(devices, p+d)
		}
	}
	exts := []string{"", ".txt", ".tar.gz", ".exe", ".jpeg", ".html", ".x.y.z", " .txt", "  .log", ".TXT"}
	for a := 'a'; a <= 'z'; a++ {
		exts = append(exts, "."+string(a))
		for b := 'a'; b <= 'z'; b++ {
			exts = append(exts, "."+string(a)+string(b))
		}
	}
	for d := '0'; d <= '9'; d++ {
		exts = append(exts, "."+string(d))
	}
	total := 0
	for _, dev := range devices {
		for _, cased := range caseMixes(dev) {
			for _, ext := range exts {
				seg := cased + ext
				refuse(t, seg, seg+"/x", "x/"+seg, "a/"+seg+"/b.txt")
				total++
			}
		}
	}
	t.Logf("%d device segments refused (%d devices, %d extensions, every mix of case)", total, len(devices), len(exts))
	for _, ok := range []string{"COM10", "LPT10.txt", "CONSOLE.txt", "nul_file", "auxiliary.txt", "x/aux1", "COM\u2074", "con-notes.txt"} {
		assert.NoError(t, store.ValidateName(ok), "%q", ok)
	}
}

// caseMixes returns s in every mix of upper and lower case of its letters.
func caseMixes(s string) []string {
	out := []string{""}
	for _, r := range s {
		var next []string
		for _, p := range out {
			next = append(next, p+string(unicode.ToUpper(r)))
			if l := unicode.ToLower(r); l != unicode.ToUpper(r) {
				next = append(next, p+string(l))
			}
		}
		out = next
	}
	return out
}

// TestRefusesEveryNonNFCName sends every code point, and its canonical
// decomposition, that NFC would change: "café" in NFD must not be stored
// next to "café" in NFC.
func TestRefusesEveryNonNFCName(t *testing.T) {
	total := 0
	eachRune(func(r rune) {
		for _, s := range []string{string(r), norm.NFD.String(string(r))} {
			if norm.NFC.String(s) != s {
				refuse(t, "x"+s+".txt", "dir/"+s+"x/y")
				total++
			}
		}
	})
	refuse(t, "cafe\u0301.txt", "\u212b.txt") // NFD café; ANGSTROM SIGN, which NFC maps to Å
	assert.NoError(t, store.ValidateName("caf\u00e9.txt"))
	t.Logf("%d decomposed names refused", total)
	require.Greater(t, total, 2000)
}

// TestAcceptsEveryScript accepts a name built around every letter and
// digit Unicode has that is NFC-stable and is not itself a look-alike
// modifier, and every emoji written without a variation selector or joiner.
func TestAcceptsEveryScript(t *testing.T) {
	total := 0
	eachRune(func(r rune) {
		in := unicode.In(r, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Lo, unicode.Nd) ||
			unicode.Is(unicode.Lm, r) && !unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) && !isLookalikeModifier(r) ||
			0x1F300 <= r && r <= 0x1FAFF && unicode.Is(unicode.So, r)
		name := "dir/a" + string(r) + "b.txt"
		if !in || defaultIgnorable(r) || !norm.NFC.IsNormalString(name) {
			return
		}
		if !assert.NoError(t, store.ValidateName(name), "%U %+q", r, name) {
			t.FailNow()
		}
		total++
	})
	for _, name := range []string{
		"caf\u00e9.txt", "Ελληνικά.doc", "Привет мир.txt", "שלום.txt", "تقرير ٢٠٢٦.pdf", "日本語/ファイル.pdf",
		"한국어.hwp", "हिन्दी.txt", "ภาษาไทย.txt", "😀 party.jpg", "👍🏽.png", "❤.txt", "naïve résumé.pdf", "100% done.txt",
	} {
		assert.NoError(t, store.ValidateName(name), "%q", name)
	}
	t.Logf("%d letters, digits and emoji accepted", total)
	require.Greater(t, total, 100000)
}

// isLookalikeModifier lists the modifier letters that pass for a dot or a
// slash, which are refused anywhere: Lisu tone letters and the vertical
// kana repeat mark.
func isLookalikeModifier(r rune) bool {
	switch r {
	case 0xA4F8, 0xA4FA, 0xA4FB, 0x3033:
		return true
	}
	return false
}

// TestEmojiWithSelectorsOrJoinersAreRefused documents the cost of refusing
// invisible characters: an emoji spelled with U+FE0F, or a ZWJ sequence.
func TestEmojiWithSelectorsOrJoinersAreRefused(t *testing.T) {
	for _, name := range []string{"\u2764\ufe0f.txt", "\U0001F468\u200d\U0001F469\u200d\U0001F467.png", "1\ufe0f\u20e3.txt"} {
		assert.ErrorIs(t, store.ValidateName(name), store.ErrInvalidName, "%+q", name)
	}
}
