package api

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"

	"spillway/store"
)

// inlineTypes are the only types a download is served as, by extension:
// types a browser shows without running anything, even on an origin that
// sends no X-Content-Type-Options (S3's, through a presigned URL), since a
// browser sniffs text/plain only to tell binary from text and an image,
// audio or video type only among the same kind. Anything else (HTML, XHTML,
// SVG, XML, XSL, script, PDF, CSS, unknown) can render actively, or is not
// worth the risk, and is sent as an attachment.
//
// The table is fixed rather than mime.TypeByExtension, which reads the
// system's mime.types: the local server and the function must give the same
// name the same headers.
var inlineTypes = map[string]string{
	".txt":  "text/plain; charset=utf-8",
	".log":  "text/plain; charset=utf-8",
	".md":   "text/plain; charset=utf-8",
	".json": "application/json",
	".png":  "image/png",
	".jpg":  "image/jpeg",
	".jpeg": "image/jpeg",
	".gif":  "image/gif",
	".webp": "image/webp",
	".avif": "image/avif",
	".bmp":  "image/bmp",
	".ico":  "image/x-icon",
	".mp3":  "audio/mpeg",
	".m4a":  "audio/mp4",
	".ogg":  "audio/ogg",
	".oga":  "audio/ogg",
	".opus": "audio/ogg",
	".wav":  "audio/wav",
	".flac": "audio/flac",
	".mp4":  "video/mp4",
	".m4v":  "video/mp4",
	".webm": "video/webm",
	".ogv":  "video/ogg",
	".mov":  "video/quicktime",
}

// downloadHeaders is the one rule for the headers a stored file is
// downloaded with, whether the handler serves it or a presigned URL does:
// a type from inlineTypes, shown inline, or application/octet-stream as an
// attachment under the file's base name.
func downloadHeaders(name string) store.DownloadHeaders {
	base := path.Base(name)
	if t, ok := inlineTypes[strings.ToLower(path.Ext(base))]; ok {
		return store.DownloadHeaders{ContentType: t}
	}
	return store.DownloadHeaders{
		ContentType:        "application/octet-stream",
		ContentDisposition: attachment(base),
	}
}

// headersFor is the headers of a download of name: by its name
// (downloadHeaders), or under an allow list by its stored type.
func (h *Handler) headersFor(ctx context.Context, name string, info store.Info, content io.ReadSeeker) (store.DownloadHeaders, error) {
	if h.allow.Any() {
		return downloadHeaders(name), nil
	}
	t, err := h.storedType(ctx, name, info, content)
	if err != nil {
		return store.DownloadHeaders{}, err
	}
	return typedDownloadHeaders(name, t), nil
}

// attachment is a Content-Disposition that saves the file under base: the
// UTF-8 name in filename* (RFC 6266, RFC 8187), and an ASCII stand-in in
// filename for clients that know only that.
func attachment(base string) string {
	var ascii, ext strings.Builder
	for _, r := range base {
		// '%' too: some clients percent-decode filename.
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == '%' {
			ascii.WriteByte('_')
		} else {
			ascii.WriteRune(r)
		}
	}
	const hex = "0123456789ABCDEF"
	for _, c := range []byte(base) {
		if isAttrChar(c) {
			ext.WriteByte(c)
		} else {
			ext.WriteByte('%')
			ext.WriteByte(hex[c>>4])
			ext.WriteByte(hex[c&0xf])
		}
	}
	return `attachment; filename="` + ascii.String() + `"; filename*=UTF-8''` + ext.String()
}

// isAttrChar reports the bytes RFC 8187 lets a filename* value carry as
// they are.
func isAttrChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}

// setDownloadHeaders sets the headers both GET and HEAD of a stored file
// carry before http.ServeContent adds the rest.
func setDownloadHeaders(w http.ResponseWriter, dh store.DownloadHeaders, info store.Info) {
	hdr := w.Header()
	hdr.Set("ETag", info.ETag)
	if b, err := hex.DecodeString(info.SHA256); err == nil && len(b) == sha256.Size {
		hdr.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(b)+":")
	}
	hdr.Set("Content-Type", dh.ContentType)
	if dh.ContentDisposition != "" {
		hdr.Set("Content-Disposition", dh.ContentDisposition)
	}
	// Stored files are whatever users sent: never let a browser run them
	// as this origin's pages.
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Security-Policy", "sandbox")
}

// redirect sends a client to url with a body that says so in plain text, so
// that a client that does not follow redirects (curl without -L) saves
// something that explains itself rather than an HTML link.
func redirect(w http.ResponseWriter, url string) {
	hdr := w.Header()
	hdr.Set("Location", url)
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusTemporaryRedirect)
	w.Write([]byte("The file is at the URL below, which expires; follow the redirect to download it (curl -L).\n" + url + "\n"))
}

// noContent stands in for a file's bytes where only its size is needed: a
// HEAD answered from metadata, through http.ServeContent, which never reads
// the content for HEAD.
type noContent struct{}

func (noContent) ReadAt([]byte, int64) (int, error) {
	return 0, errors.New("api: a HEAD answer has no content")
}

// serveContent serves a stored file's bytes, or for HEAD its headers, with
// http.ServeContent, after normalising the Range header for it.
func serveContent(w http.ResponseWriter, r *http.Request, name string, info store.Info, content io.ReadSeeker) {
	if rng, ok := normalRange(r.Header.Get("Range"), info.Size); ok {
		r = r.Clone(r.Context())
		if rng == "" {
			r.Header.Del("Range")
		} else {
			r.Header.Set("Range", rng)
		}
	}
	http.ServeContent(w, r, path.Base(name), info.Modified, content)
}

// normalRange rewrites a Range header where http.ServeContent departs from
// RFC 9110 §14, and reports whether it did. ServeContent refuses with 416
// any unit but a lower-case "bytes", where a unit is case-insensitive and
// an unknown one must be ignored (the whole file, 200); and it answers a
// zero-length suffix ("-0"), which selects nothing, with an empty 206. Such
// suffixes are dropped, and a set of nothing else becomes a range past the
// end, so that ServeContent gives its own 416 (after If-Range, which may
// still make it a 200).
func normalRange(rng string, size int64) (string, bool) {
	if rng == "" {
		return "", false
	}
	unit, set, ok := strings.Cut(rng, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return "", true
	}
	var specs []string
	dropped := false
	for spec := range strings.SplitSeq(set, ",") {
		if s := strings.TrimSpace(spec); strings.HasPrefix(s, "-") && strings.TrimLeft(s[1:], "0") == "" && len(s) > 1 {
			dropped = true
			continue
		}
		specs = append(specs, spec)
	}
	switch {
	case dropped && len(specs) == 0:
		return "bytes=" + strconv.FormatInt(size, 10) + "-", true
	case dropped:
		return "bytes=" + strings.Join(specs, ","), true
	case unit != "bytes":
		return "bytes=" + set, true
	}
	return "", false
}

// wantsSHA256 reports whether the request asks for the file's SHA-256 with
// Want-Repr-Digest (RFC 9530), such as "sha-256=1": a client checking that
// the file stored under a name is the one it has.
func wantsSHA256(r *http.Request) bool {
	for _, v := range r.Header.Values("Want-Repr-Digest") {
		for item := range strings.SplitSeq(v, ",") {
			alg, pref, _ := strings.Cut(strings.TrimSpace(item), "=")
			if strings.EqualFold(strings.TrimSpace(alg), "sha-256") && strings.TrimSpace(pref) != "0" {
				return true
			}
		}
	}
	return false
}

// hashStored returns a stored file's metadata with its SHA-256, read from
// the one open file the metadata describes, for a store that keeps no
// digest (the directory store): computed on request, so never stale.
func (h *Handler) hashStored(ctx context.Context, name string) (store.Info, error) {
	info, rc, err := h.store.Open(ctx, name)
	if err != nil {
		return store.Info{}, err
	}
	defer rc.Close()
	sum := sha256.New()
	// A working buffer of the spool's, so that digests asked at once
	// count against the memory budget as uploads do.
	buf, release := h.spool.Buffer()
	defer release()
	n, err := io.CopyBuffer(sum, struct{ io.Reader }{contextReader{ctx, rc}}, buf)
	if err != nil {
		return store.Info{}, fmt.Errorf("hash %q: %w", name, err)
	}
	if n != info.Size {
		return store.Info{}, fmt.Errorf("hash %q: read %d bytes of %d", name, n, info.Size)
	}
	info.SHA256 = hex.EncodeToString(sum.Sum(nil))
	return info, nil
}

// contextReader stops a long read once the request is over.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
