// Package web is Spillway's upload page: one self-contained HTML file,
// embedded in the binary, with no CDN and no build step.
package web

import (
	_ "embed"
	"net/http"
)

//go:embed index.html
var page []byte

// ServePage writes the upload page.
func ServePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	// Everything the page needs is inline; nothing else may load or run.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(page)
	}
}
