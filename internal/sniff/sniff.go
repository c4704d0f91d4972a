// Package sniff decides a file's content type from its first bytes, with
// net/http's DetectContentType (the WHATWG MIME Sniffing algorithm), and
// holds the rules of which types a server accepts (SPILLWAY_ALLOW_TYPES).
//
// What the sniffer recognises: application/pdf, application/postscript,
// image/png, image/jpeg, image/gif, image/webp, image/bmp, image/x-icon,
// application/zip, application/x-gzip, application/x-rar-compressed,
// application/wasm, application/ogg, audio/mpeg (MP3 with an ID3 tag),
// audio/wave, audio/aiff, audio/midi, video/avi, video/webm, video/mp4
// (when its ftyp box names an mp4 brand), the fonts (font/ttf, font/otf,
// font/woff, font/woff2, font/collection, application/vnd.ms-fontobject);
// text as text/plain, text/html or text/xml with a charset; anything else
// is application/octet-stream. An allow list can only name those types with
// effect: a .docx is application/zip, a HEIC or AVIF image, an MP3 without
// an ID3 tag or a QuickTime movie is application/octet-stream, a CSV or a
// JSON file is text/plain, an SVG is text/xml.
package sniff

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// Len is how many leading bytes decide the type.
const Len = 512

// Detect returns the content type of the bytes r begins with, as
// http.DetectContentType gives it (parameters included, such as
// "text/plain; charset=utf-8").
func Detect(r io.ReaderAt) (string, error) {
	buf := make([]byte, Len)
	n, err := r.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("sniff: %w", err)
	}
	return http.DetectContentType(buf[:n]), nil
}

// Rules are the types a server accepts; the zero value accepts every one.
type Rules struct {
	patterns []string // "type/subtype" or "type/*", lower case
}

// Parse reads a comma-separated list of media types, each "type/subtype"
// or "type/*" ("image/*,application/pdf"). An empty list accepts every
// type.
func Parse(list string) (Rules, error) {
	var r Rules
	for p := range strings.SplitSeq(list, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		typ, sub, ok := strings.Cut(p, "/")
		if !ok || typ == "" || sub == "" || typ == "*" || strings.ContainsAny(p, " ;") ||
			(sub != "*" && strings.Contains(sub, "*")) {
			return Rules{}, fmt.Errorf("sniff: %q is not a type/subtype or type/*", p)
		}
		if sub != "*" {
			if _, _, err := mime.ParseMediaType(p); err != nil {
				return Rules{}, fmt.Errorf("sniff: %q: %w", p, err)
			}
		}
		r.patterns = append(r.patterns, p)
	}
	return r, nil
}

// Any reports whether the rules accept every type.
func (r Rules) Any() bool { return len(r.patterns) == 0 }

// String is the list as Parse reads it.
func (r Rules) String() string { return strings.Join(r.patterns, ",") }

// Allow reports whether contentType (parameters ignored) is accepted.
func (r Rules) Allow(contentType string) bool {
	if r.Any() {
		return true
	}
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	typ, _, _ := strings.Cut(mt, "/")
	for _, p := range r.patterns {
		if p == mt || p == typ+"/*" {
			return true
		}
	}
	return false
}
