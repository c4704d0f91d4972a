package api_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
)

// TestDownloadHeaders serves the shared download table from the directory
// store: GET and HEAD give the same headers, those the function gives
// through S3 (s3store's TestDownloadsThroughTheAPI), so that an uploaded
// page or SVG never renders as this origin's document.
func TestDownloadHeaders(t *testing.T) {
	s := newServer(t, options{})
	downloads := uploadtest.Downloads()
	for _, d := range downloads {
		resp, body := s.do(t, s.request(t, http.MethodPut, uploadtest.FilePath(d.File.Name), d.File.Reader(), d.File.Size))
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
		s.waitServed(t)
	}
	for _, d := range downloads {
		t.Run(d.File.Name, func(t *testing.T) {
			get, body := s.do(t, s.request(t, http.MethodGet, uploadtest.FilePath(d.File.Name), nil, 0))
			require.Equal(t, http.StatusOK, get.StatusCode, string(body))
			s.waitServed(t)
			assert.Equal(t, d.File.Bytes(), body)
			uploadtest.RequireDownloadHeaders(t, d, get.Header)
			assert.Equal(t, "nosniff", get.Header.Get("X-Content-Type-Options"))
			assert.Equal(t, "sandbox", get.Header.Get("Content-Security-Policy"))

			head, body := s.do(t, s.request(t, http.MethodHead, uploadtest.FilePath(d.File.Name), nil, 0))
			require.Equal(t, http.StatusOK, head.StatusCode)
			s.waitServed(t)
			assert.Empty(t, body)
			for _, k := range []string{"Content-Type", "Content-Disposition", "Content-Length", "ETag",
				"Last-Modified", "Accept-Ranges", "X-Content-Type-Options", "Content-Security-Policy"} {
				assert.Equal(t, get.Header.Values(k), head.Header.Values(k), k)
			}
		})
	}
}

// TestDownloadRanges checks the Range edge cases that http.ServeContent
// gets wrong by itself (RFC 9110 §14): a suffix of zero bytes selects
// nothing, so a range set of only such suffixes is 416; a unit other than
// bytes is ignored, so the whole file is 200; a unit is case-insensitive.
// GET and HEAD answer alike.
func TestDownloadRanges(t *testing.T) {
	s := newServer(t, options{})
	f := uploadtest.File{Name: "r.bin", Seed: 3, Size: 1000}
	resp, body := s.do(t, s.request(t, http.MethodPut, "/files/r.bin", f.Reader(), f.Size))
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	s.waitServed(t)
	data := f.Bytes()

	for _, c := range []struct {
		rng          string
		status       int
		contentRange string
		body         []byte
	}{
		{"bytes=-0", http.StatusRequestedRangeNotSatisfiable, "bytes */1000", nil},
		{"bytes=-0, -0", http.StatusRequestedRangeNotSatisfiable, "bytes */1000", nil},
		{"bytes=-0,0-9", http.StatusPartialContent, "bytes 0-9/1000", data[:10]},
		{"bytes=-1", http.StatusPartialContent, "bytes 999-999/1000", data[999:]},
		{"bytes=-2000", http.StatusPartialContent, "bytes 0-999/1000", data},
		{"bytes=1000-", http.StatusRequestedRangeNotSatisfiable, "bytes */1000", nil},
		{"Bytes=0-9", http.StatusPartialContent, "bytes 0-9/1000", data[:10]},
		{"items=0-9", http.StatusOK, "", data},
		{"pages=1", http.StatusOK, "", data},
		{"bytes", http.StatusOK, "", data},
		{"0-9", http.StatusOK, "", data},
	} {
		t.Run(c.rng, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				req := s.request(t, method, "/files/r.bin", nil, 0)
				req.Header.Set("Range", c.rng)
				resp, body := s.do(t, req)
				s.waitServed(t)
				require.Equal(t, c.status, resp.StatusCode, "%s: %s", method, body)
				assert.Equal(t, c.contentRange, resp.Header.Get("Content-Range"), method)
				if c.status == http.StatusRequestedRangeNotSatisfiable {
					continue
				}
				assert.Equal(t, strconv.Itoa(len(c.body)), resp.Header.Get("Content-Length"), method)
				if method == http.MethodGet {
					assert.Equal(t, c.body, body)
				}
			}
		})
	}
}

// TestHeadReportsSHA256 asks HEAD for the file's SHA-256 (RFC 9530's
// Want-Repr-Digest), which the directory store does not keep: the handler
// reads it from the file, on request only.
func TestHeadReportsSHA256(t *testing.T) {
	s := newServer(t, options{})
	f := uploadtest.File{Name: "d.bin", Seed: 4, Size: 300 << 10}
	resp, body := s.do(t, s.request(t, http.MethodPut, "/files/d.bin", f.Reader(), f.Size))
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	s.waitServed(t)
	sum := sha256.Sum256(f.Bytes())

	req := s.request(t, http.MethodHead, "/files/d.bin", nil, 0)
	req.Header.Set("Want-Repr-Digest", "sha-512=3, sha-256=10")
	head, _ := s.do(t, req)
	s.waitServed(t)
	require.Equal(t, http.StatusOK, head.StatusCode)
	assert.Equal(t, "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":", head.Header.Get("Repr-Digest"))
	assert.Equal(t, strconv.Itoa(int(f.Size)), head.Header.Get("Content-Length"))

	for _, want := range []string{"", "sha-256=0", "sha-512=1"} {
		req := s.request(t, http.MethodHead, "/files/d.bin", nil, 0)
		if want != "" {
			req.Header.Set("Want-Repr-Digest", want)
		}
		head, _ := s.do(t, req)
		s.waitServed(t)
		require.Equal(t, http.StatusOK, head.StatusCode)
		assert.Empty(t, head.Header.Get("Repr-Digest"), "not asked for: %q", want)
	}
}
