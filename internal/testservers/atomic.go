package testservers

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// Atomic returns the gateway behind a proxy on loopback that runs its
// conditional writes one at a time: requests with If-Match or
// If-None-Match, and CompleteMultipartUpload. S3 makes each of those
// atomic; versitygw checks the condition and then writes, so two racing
// writes can both pass the check. Tests of code that relies on S3's
// atomicity, such as two completions of one upload, run against this.
// Everything else passes through untouched, signatures included.
func (s *S3) Atomic(t testing.TB) *S3 {
	t.Helper()
	target, err := url.Parse(s.Endpoint)
	require.NoError(t, err)
	var mu sync.Mutex
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host // the host the client signed
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if conditional(r) {
			mu.Lock()
			defer mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	atomic := *s
	atomic.Endpoint = srv.URL
	return &atomic
}

func conditional(r *http.Request) bool {
	if r.Header.Get("If-Match") != "" || r.Header.Get("If-None-Match") != "" {
		return true
	}
	return r.Method == http.MethodPost && r.URL.Query().Has("uploadId")
}
