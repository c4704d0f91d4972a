package s3store

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/internal/uploadtest"
	"spillway/wire"
)

// TestDownloadsThroughTheAPI serves the shared download table from the API
// handler over a real S3 gateway, as the function does: HEAD is answered
// from the object's metadata (a URL presigned for GET is refused for HEAD),
// and GET redirects to a presigned URL whose response carries the same
// Content-Type and Content-Disposition as the local server's (api's
// TestDownloadHeaders).
func TestDownloadsThroughTheAPI(t *testing.T) {
	e := newEnv(t, Options{})
	logs := &uploadtest.SyncBuffer{}
	h := api.New(api.Config{Spooler: e.spooler, Store: e.store, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	client := &http.Client{}
	t.Cleanup(client.CloseIdleConnections)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(noRedirect.CloseIdleConnections)

	downloads := uploadtest.Downloads()
	for _, d := range downloads {
		require.NoError(t, put(t, e, d.File))
	}
	for _, d := range downloads {
		t.Run(d.File.Name, func(t *testing.T) {
			obj, err := e.gw.Client().HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(e.gw.Bucket), Key: aws.String(d.File.Name)})
			require.NoError(t, err)

			// HEAD: the handler itself writes the headers and no body.
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodHead, uploadtest.FilePath(d.File.Name), nil))
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.Zero(t, rec.Body.Len(), "a HEAD answer has no body")
			head := rec.Result().Header
			uploadtest.RequireDownloadHeaders(t, d, head)
			assert.Equal(t, strconv.FormatInt(d.File.Size, 10), head.Get("Content-Length"))
			assert.Equal(t, aws.ToString(obj.ETag), head.Get("ETag"))
			assert.Equal(t, aws.ToTime(obj.LastModified).UTC().Format(http.TimeFormat), head.Get("Last-Modified"))
			assert.Equal(t, "nosniff", head.Get("X-Content-Type-Options"))
			assert.Equal(t, "sandbox", head.Get("Content-Security-Policy"))

			// A conditional HEAD is answered as GET would be.
			req := httptest.NewRequestWithContext(t.Context(), http.MethodHead, uploadtest.FilePath(d.File.Name), nil)
			req.Header.Set("If-None-Match", head.Get("ETag"))
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			assert.Equal(t, http.StatusNotModified, rec.Code)

			// GET: the redirect says where the file is, in its body too.
			resp, err := noRedirect.Get(ts.URL + uploadtest.FilePath(d.File.Name))
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode, string(body))
			loc := resp.Header.Get("Location")
			require.True(t, strings.HasPrefix(loc, e.gw.Endpoint+"/"), loc)
			assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
			assert.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"))
			assert.Contains(t, string(body), loc+"\n")
			if d.Disposition != "" {
				// The overrides are signed: without them the URL is refused,
				// so it cannot be turned into an inline page.
				u, err := url.Parse(loc)
				require.NoError(t, err)
				q := u.Query()
				require.Equal(t, d.Disposition, q.Get("response-content-disposition"))
				q.Del("response-content-disposition")
				q.Del("response-content-type")
				u.RawQuery = q.Encode()
				resp, err := client.Get(u.String())
				require.NoError(t, err)
				resp.Body.Close()
				assert.Equal(t, http.StatusForbidden, resp.StatusCode)
			}

			// A client that follows it gets the bytes from the gateway,
			// with the headers the local server sends.
			resp, err = client.Get(ts.URL + uploadtest.FilePath(d.File.Name))
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, e.gw.Endpoint, "http://"+resp.Request.URL.Host, "served by the gateway")
			uploadtest.RequireDownloadHeaders(t, d, resp.Header)
			assert.Equal(t, head.Get("ETag"), resp.Header.Get("ETag"))
			assert.Equal(t, head.Get("Content-Length"), resp.Header.Get("Content-Length"))
			uploadtest.RequireContent(t, d.File, resp.Body)
		})
	}

	t.Run("missing", func(t *testing.T) {
		for _, method := range []string{http.MethodHead, http.MethodGet} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), method, "/files/missing.html", nil))
			require.Equal(t, http.StatusNotFound, rec.Code, method)
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			var got wire.ErrorResponse
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got), rec.Body.String())
			assert.Equal(t, wire.CodeNotFound, got.Error.Code)
		}
	})
	if t.Failed() {
		t.Logf("handler log:\n%s", logs)
	}
}
