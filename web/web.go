// Package web is Spillway's upload page: one self-contained HTML file,
// embedded in the binary, with no CDN and no build step.
package web

import (
	_ "embed"
	"net/http"
)

//go:embed index.html
var page []byte

// connectSrc is where the page may send requests: its own origin, and the
// part URLs of files it sends in parts (docs/MULTIPART.md). With a
// directory store those are the server's own, so 'self'. Deployed, they
// are S3's presigned UploadPart URLs, https://BUCKET.s3.REGION.amazonaws.com/…
// (virtual-hosted, as the function's S3 client makes them; path-style
// https://s3.REGION.amazonaws.com/BUCKET/… and the accelerate and
// dual-stack hosts fit too). The bucket and the region belong to the
// deployment, which this package does not know, and a CSP wildcard may
// only lead a host, so *.amazonaws.com, over HTTPS only, is the narrowest
// rule that takes them: much narrower than https:, though it does not pin
// our own bucket. Part URLs anywhere else (an S3-compatible server on
// another port, in development) stay blocked; the page checks for that
// before it sends a part and then sends the file whole instead. Its
// reachable function mirrors this rule: change the two together.
const connectSrc = "'self' https://*.amazonaws.com"

// ServePage writes the upload page.
func ServePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	// Everything the page needs is inline; nothing else may load or run.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src "+connectSrc+"; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(page)
	}
}
