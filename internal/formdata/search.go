package formdata

import "bytes"

// finder finds the delimiter in a part's body faster than bytes.Index does
// in the data uploads are made of. bytes.Index looks for the delimiter's
// first byte with IndexByte; in random (compressed) data that byte comes
// every 256 bytes, in CRLF text far more often, and the call per candidate
// then dominates.
//
// finder instead samples every n-th byte, n being the delimiter's length:
// any match covers exactly one sample, so a sampled byte that is not in
// the delimiter rules out the n starts around it. A sampled byte that is
// in it is checked at each start that would put it in place. The samples
// do not depend on each other, so the CPU overlaps them. Where checks pile
// up (data made of the delimiter's bytes) it hands the rest of the window
// to bytes.Index, which is fast exactly there.
type finder struct {
	pat []byte
	// The starts to check for a sampled byte c: pat[j] == c for j+1 =
	// last[c], prev[last[c]-1], ... until 0, in decreasing j.
	last [256]uint16
	prev []uint16
}

// minSampledLen is the shortest delimiter worth sampling for: at shorter
// strides the samples cost more than bytes.Index's search.
const minSampledLen = 8

func (f *finder) reset(pat []byte) {
	f.pat = pat
	f.last = [256]uint16{}
	if cap(f.prev) < len(pat) {
		f.prev = make([]uint16, 0, len(pat))
	}
	f.prev = f.prev[:0]
	for j, c := range pat {
		f.prev = append(f.prev, f.last[c])
		f.last[c] = uint16(j + 1)
	}
}

// index is bytes.Index(s, f.pat).
func (f *finder) index(s []byte) int {
	pat := f.pat
	n := len(pat)
	if n < minSampledLen || len(s) < 4*n {
		return bytes.Index(s, pat)
	}
	c0 := pat[0]
	// A budget of checks, renewed every 64 samples: random data spends
	// about 3 per 64, a run of the delimiter's most common byte n per sample.
	const window, budget = 64, 256
	checks, samples := 0, 0
	for p := n - 1; p < len(s); p += n {
		for j := f.last[s[p]]; j != 0; j = f.prev[j-1] {
			q := p - int(j-1) // q >= 0: j-1 < n <= p+1
			if s[q] == c0 && q+n <= len(s) && bytes.Equal(s[q:q+n], pat) {
				return q
			}
			checks++
		}
		samples++
		if samples == window {
			if checks > budget {
				// Every start before this sample's has been ruled out.
				from := p + 1
				if i := bytes.Index(s[from:], pat); i >= 0 {
					return from + i
				}
				return -1
			}
			checks, samples = 0, 0
		}
	}
	return -1
}
