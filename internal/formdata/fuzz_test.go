package formdata

import (
	"testing"
)

// FuzzFormData holds a Reader to mime/multipart's NextPart on the same
// body: the same parts, headers and bytes, and the same failures, but for
// the deliberate difference diffEnd allows. seed varies the source's read
// sizes, the buffer size and how the parts are read. It also holds the
// default header limit to mime/multipart's below that limit.
func FuzzFormData(f *testing.F) {
	for i, c := range cases {
		if len(c.body) > 16<<10 {
			continue // mutating a big body is slow, and finds no more
		}
		for seed := range uint64(4) {
			f.Add([]byte(c.body), c.boundary, seed*1000+uint64(i))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, boundary string, seed uint64) {
		diffMime(t, body, boundary, seed)
		diffDefaultHeaderLimit(t, body, boundary)
	})
}
