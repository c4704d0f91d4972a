package formdata

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFinder holds finder.index to bytes.Index on data made of few byte
// values, where near misses, overlapping starts and the fallback to
// bytes.Index are common.
func TestFinder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		alphabet := "\r\n-ab"[:2+rng.IntN(4)]
		pat := []byte("\r\n--")
		for range rng.IntN(20) {
			pat = append(pat, alphabet[rng.IntN(len(alphabet))])
		}
		s := make([]byte, rng.IntN(2000))
		for i := range s {
			s[i] = alphabet[rng.IntN(len(alphabet))]
		}
		// Plant a match now and then, sometimes cut by the end.
		if len(s) > 0 && rng.IntN(2) == 0 {
			copy(s[rng.IntN(len(s)):], pat)
		}
		var f finder
		f.reset(pat)
		require.Equal(t, bytes.Index(s, pat), f.index(s), "%q in %q", pat, s)
	}
}

// BenchmarkIndex compares finder.index with bytes.Index on a browser-like
// delimiter over 256 KiB windows of typical and degenerate data.
func BenchmarkIndex(b *testing.B) {
	pat := []byte("\r\n--" + benchBoundary)
	data := map[string][]byte{
		"random": fileBody(4<<20, ""),
		"zeros":  make([]byte, 4<<20),
		"dashes": bytes.Repeat([]byte("-"), 4<<20),
		"hex":    []byte(strings.Repeat("0123456789abcdef", 4<<16)),
		"crlf":   []byte(strings.Repeat("some text of a line\r\n", 4<<20/21)),
	}
	var f finder
	f.reset(pat)
	for name, d := range data {
		for _, alg := range []string{"bytes.Index", "finder"} {
			b.Run(name+"/"+alg, func(b *testing.B) {
				b.SetBytes(int64(len(d)))
				for b.Loop() {
					for i := 0; i < len(d); i += bufferSize {
						w := d[i:min(len(d), i+bufferSize)]
						if alg == "finder" {
							f.index(w)
						} else {
							bytes.Index(w, pat)
						}
					}
				}
			})
		}
	}
}
