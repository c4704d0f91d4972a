package uploadtest

import "io"

// PatternReader yields N bytes repeating P: a benchmark client that holds
// no body and spends next to no CPU making one.
type PatternReader struct {
	P   []byte
	N   int64 // bytes left
	off int
}

func (r *PatternReader) Read(b []byte) (int, error) {
	if r.N <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > r.N {
		b = b[:r.N]
	}
	total := 0
	for len(b) > 0 {
		k := copy(b, r.P[r.off:])
		r.off = (r.off + k) % len(r.P)
		b = b[k:]
		total += k
	}
	r.N -= int64(total)
	return total, nil
}

// StreamedMultipart is a multipart/form-data body with one file part, name,
// whose bytes stream from r: its Content-Type, the body, and its exact
// length.
func StreamedMultipart(name string, r *PatternReader) (contentType string, body io.Reader, length int64) {
	return Form{Parts: []Part{{Field: "file", Name: name, Body: r, Size: r.N}}}.Body()
}
