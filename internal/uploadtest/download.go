package uploadtest

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Download is a stored file and the headers it must be downloaded with,
// whichever entrypoint and store serve it.
type Download struct {
	File        File
	ContentType string
	Disposition string // "" when the file may be shown inline
}

// Downloads returns the names every download test serves: types a browser
// would run or render actively (HTML, SVG, XML, PDF, script, unknown) go as
// attachments of type application/octet-stream; plain text, JSON and
// raster images are shown inline as what they are.
func Downloads() []Download {
	const octet = "application/octet-stream"
	return []Download{
		{File{Name: "x.html", Seed: 1, Size: 300, Text: true}, octet, `attachment; filename="x.html"; filename*=UTF-8''x.html`},
		{File{Name: "x.svg", Seed: 2, Size: 200, Text: true}, octet, `attachment; filename="x.svg"; filename*=UTF-8''x.svg`},
		{File{Name: "d/x.XHTML", Seed: 3, Size: 10, Text: true}, octet, `attachment; filename="x.XHTML"; filename*=UTF-8''x.XHTML`},
		{File{Name: "feed.xml", Seed: 4, Size: 10, Text: true}, octet, `attachment; filename="feed.xml"; filename*=UTF-8''feed.xml`},
		{File{Name: "app.js", Seed: 5, Size: 10, Text: true}, octet, `attachment; filename="app.js"; filename*=UTF-8''app.js`},
		{File{Name: "doc.pdf", Seed: 6, Size: 1000}, octet, `attachment; filename="doc.pdf"; filename*=UTF-8''doc.pdf`},
		{File{Name: "no-extension", Seed: 7, Size: 10}, octet, `attachment; filename="no-extension"; filename*=UTF-8''no-extension`},
		{File{Name: "sub/na\u00efve 'q' 50% \u00fc.html", Seed: 8, Size: 10, Text: true}, octet,
			`attachment; filename="na_ve 'q' 50_ _.html"; filename*=UTF-8''na%C3%AFve%20%27q%27%2050%25%20%C3%BC.html`},
		{File{Name: "a.txt", Seed: 9, Size: 3, Text: true}, "text/plain; charset=utf-8", ""},
		{File{Name: "data.json", Seed: 10, Size: 10, Text: true}, "application/json", ""},
		{File{Name: "pics/PIC.PNG", Seed: 11, Size: 2000}, "image/png", ""},
		{File{Name: "clip.mp4", Seed: 12, Size: 2000}, "video/mp4", ""},
	}
}

// FilePath is the escaped path of GET /files/{name}.
func FilePath(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "/files/" + strings.Join(segs, "/")
}

// RequireDownloadHeaders checks the Content-Type and Content-Disposition
// that d must be served with.
func RequireDownloadHeaders(t testing.TB, d Download, h http.Header) {
	t.Helper()
	assert.Equal(t, d.ContentType, h.Get("Content-Type"), d.File.Name)
	if d.Disposition == "" {
		assert.NotContains(t, h, "Content-Disposition", d.File.Name)
	} else {
		assert.Equal(t, d.Disposition, h.Get("Content-Disposition"), d.File.Name)
	}
}
