package serve

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCORS(t *testing.T) {
	var reached int
	h := CORS(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
		w.WriteHeader(http.StatusCreated)
	}), "https://app.example, https://admin.example")

	pre := httptest.NewRequest(http.MethodOptions, "/files/a.bin", nil)
	pre.Header.Set("Origin", "https://app.example")
	pre.Header.Set("Access-Control-Request-Method", "PUT")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, pre)
	assert.Equal(t, http.StatusNoContent, rec.Code)
	assert.Equal(t, "https://app.example", rec.Header().Get("Access-Control-Allow-Origin"))
	assert.Contains(t, rec.Header().Get("Access-Control-Allow-Methods"), "PUT")
	assert.Contains(t, rec.Header().Get("Access-Control-Allow-Headers"), "authorization")
	assert.Zero(t, reached, "a preflight never reaches the API")

	put := httptest.NewRequest(http.MethodPut, "/files/a.bin", nil)
	put.Header.Set("Origin", "https://admin.example")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, put)
	assert.Equal(t, http.StatusCreated, rec.Code)
	assert.Equal(t, "https://admin.example", rec.Header().Get("Access-Control-Allow-Origin"))
	assert.Equal(t, corsExposeHeaders, rec.Header().Get("Access-Control-Expose-Headers"))

	other := httptest.NewRequest(http.MethodPut, "/files/a.bin", nil)
	other.Header.Set("Origin", "https://evil.example")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, other)
	assert.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"))

	star := CORS(http.NotFoundHandler(), "*")
	rec = httptest.NewRecorder()
	star.ServeHTTP(rec, put)
	assert.Equal(t, "*", rec.Header().Get("Access-Control-Allow-Origin"))

	off := CORS(http.NotFoundHandler(), "")
	rec = httptest.NewRecorder()
	off.ServeHTTP(rec, put)
	assert.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"))
}

func TestIsLoopback(t *testing.T) {
	assert.True(t, IsLoopback(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}))
	assert.True(t, IsLoopback(&net.TCPAddr{IP: net.IPv6loopback}))
	assert.False(t, IsLoopback(&net.TCPAddr{IP: net.IPv4zero}))
	assert.False(t, IsLoopback(&net.TCPAddr{IP: net.IPv4(192, 0, 2, 1)}))
}

// The local server's CORS methods are the Function URL's, DELETE among
// them: the upload page deletes files and aborts uploads with it.
func TestCORSMethodsMatchTheTemplate(t *testing.T) {
	tmpl, err := os.ReadFile("../../template.yaml")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^\s*AllowMethods:\s*\[([^\]]*)\]`).FindSubmatch(tmpl)
	require.NotNil(t, m, "no AllowMethods list in template.yaml")
	var fromTemplate []string
	for _, s := range strings.Split(string(m[1]), ",") {
		fromTemplate = append(fromTemplate, strings.TrimSpace(s))
	}
	local := strings.Split(corsMethods, ", ")
	assert.ElementsMatch(t, fromTemplate, local)
	assert.Contains(t, local, http.MethodDelete)

	h := CORS(http.NotFoundHandler(), "https://app.example")
	pre := httptest.NewRequest(http.MethodOptions, "/files/a.bin", nil)
	pre.Header.Set("Origin", "https://app.example")
	pre.Header.Set("Access-Control-Request-Method", http.MethodDelete)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, pre)
	assert.Equal(t, http.StatusNoContent, rec.Code)
	assert.Contains(t, strings.Split(rec.Header().Get("Access-Control-Allow-Methods"), ", "), http.MethodDelete)
}

// A browser's tus client (tus-js-client, Uppy's tus plugin) gets through
// the preflight of a PATCH with its headers, and reads the offset back;
// the Function URL's lists in template.yaml are the same.
func TestCORSAllowsTus(t *testing.T) {
	h := CORS(http.NotFoundHandler(), "*")
	pre := httptest.NewRequest(http.MethodOptions, "/tus/ID", nil)
	pre.Header.Set("Origin", "https://app.example")
	pre.Header.Set("Access-Control-Request-Method", http.MethodPatch)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, pre)
	assert.Contains(t, strings.Split(rec.Header().Get("Access-Control-Allow-Methods"), ", "), http.MethodPatch)
	allowed := strings.Split(rec.Header().Get("Access-Control-Allow-Headers"), ", ")
	for _, hdr := range []string{"tus-resumable", "upload-offset", "upload-length", "upload-metadata", "upload-checksum", "x-http-method-override"} {
		assert.Contains(t, allowed, hdr)
	}
	get := httptest.NewRequest(http.MethodHead, "/tus/ID", nil)
	get.Header.Set("Origin", "https://app.example")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, get)
	exposed := strings.Split(rec.Header().Get("Access-Control-Expose-Headers"), ", ")
	for _, hdr := range []string{"location", "upload-offset", "upload-length", "upload-expires", "spillway-sha256"} {
		assert.Contains(t, exposed, hdr)
	}

	tmpl, err := os.ReadFile("../../template.yaml")
	require.NoError(t, err)
	for _, hdr := range append(allowed, exposed...) {
		assert.Contains(t, string(tmpl), hdr, "template.yaml's Function URL CORS lacks %s", hdr)
	}
}
