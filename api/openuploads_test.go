package api_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/store/dirstore"
)

// Past --max-open-uploads, a creation is refused with too_many_uploads on
// every route that opens an upload: tus, /uploads, and Uppy's multipart
// create; and it is a 429, which tus-js-client does not retry.
func TestTooManyUploadsOnEveryRoute(t *testing.T) {
	s := newServer(t, options{store: dirstore.Options{MaxOpenUploads: 1}})
	loc := s.tusCreate(t, "open.bin", 10)

	req := s.request(t, http.MethodPost, "/tus/", nil, 0)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", "10")
	req.Header.Set("Upload-Metadata", tusMeta("more.bin"))
	resp, body := s.do(t, req)
	requireError(t, resp, body, http.StatusTooManyRequests, "too_many_uploads")
	assert.Empty(t, resp.Header.Get("Location"))
	s.waitServed(t)

	resp, body = s.companion(t, http.MethodPost, "/uploads", map[string]any{"name": "more.bin", "size": 10})
	requireError(t, resp, body, http.StatusTooManyRequests, "too_many_uploads")
	s.waitServed(t)
	resp, body = s.companion(t, http.MethodPost, "/s3/multipart", map[string]any{"filename": "more.bin", "metadata": map[string]any{"size": 10}})
	requireError(t, resp, body, http.StatusTooManyRequests, "too_many_uploads")
	s.waitServed(t)

	// Ending the open one makes room.
	req = s.request(t, http.MethodDelete, loc, nil, 0)
	req.Header.Set("Tus-Resumable", "1.0.0")
	resp, body = s.do(t, req)
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	s.waitServed(t)
	s.tusCreate(t, "more.bin", 10)
}
