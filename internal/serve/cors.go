package serve

import (
	"net/http"
	"slices"
	"strings"
)

// The CORS policy mirrors the Function URL's in template.yaml, so a browser
// upload behaves the same against the local server and the deployed one.
const (
	corsMethods = "GET, HEAD, PUT, POST, DELETE, PATCH"
	// The tus headers are those a browser's tus client sends and reads
	// (docs/TUS.md), the result headers of a finished tus upload among them.
	corsHeaders       = "content-type, authorization, x-amz-date, x-amz-security-token, x-amz-content-sha256, tus-resumable, upload-length, upload-defer-length, upload-offset, upload-metadata, upload-checksum, x-http-method-override, x-requested-with"
	corsExposeHeaders = "location, etag, tus-resumable, tus-version, tus-extension, tus-max-size, tus-checksum-algorithm, upload-offset, upload-length, upload-defer-length, upload-metadata, upload-expires, spillway-file, spillway-sha256, spillway-crc64nvme"
	corsMaxAge        = "3600"
)

// CORS answers preflights and adds CORS headers for the allowed
// origins: a comma-separated list, or "*". Empty leaves h as it is.
func CORS(h http.Handler, origins string) http.Handler {
	var allowed []string
	for _, o := range strings.Split(origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			allowed = append(allowed, o)
		}
	}
	if len(allowed) == 0 {
		return h
	}
	wildcard := slices.Contains(allowed, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !wildcard && !slices.Contains(allowed, origin) {
			h.ServeHTTP(w, r)
			return
		}
		hdr := w.Header()
		hdr.Add("Vary", "Origin")
		if wildcard {
			hdr.Set("Access-Control-Allow-Origin", "*")
		} else {
			hdr.Set("Access-Control-Allow-Origin", origin)
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			// A preflight carries no credentials: answer it before auth.
			hdr.Set("Access-Control-Allow-Methods", corsMethods)
			hdr.Set("Access-Control-Allow-Headers", corsHeaders)
			hdr.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		hdr.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		h.ServeHTTP(w, r)
	})
}
