package api_test

import (
	"net/http"
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
