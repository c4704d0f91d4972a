package api_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// listPage is GET /files's body, decoded strictly: a field the contract
// does not have fails the test.
type listPage struct {
	Files []struct {
		Name     string `json:"name"`
		Size     int64  `json:"size"`
		Modified string `json:"modified"`
		Expires  string `json:"expires"`
	} `json:"files"`
	NextCursor *string `json:"next_cursor"`
}

// storeFiles writes files straight into the upload directory: a listing
// test needs many, not uploads.
func (s *server) storeFiles(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		p := filepath.Join(s.dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(name), 0o644))
	}
}

// listPage gets GET /files with query and decodes the page.
func (s *server) listPage(t *testing.T, query url.Values) (listPage, []byte) {
	t.Helper()
	resp, body := s.do(t, s.request(t, http.MethodGet, "/files?"+query.Encode(), nil, 0))
	s.waitServed(t)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var page listPage
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&page), string(body))
	require.NotNil(t, page.Files, "files must be a list, never null: %s", body)
	if page.NextCursor != nil {
		require.NotEmpty(t, *page.NextCursor, "next_cursor is left out, never empty")
	}
	return page, body
}

// listAll follows next_cursor from the first page with query, and returns
// every name listed and how many pages it took.
func (s *server) listAll(t *testing.T, query url.Values) ([]string, int) {
	t.Helper()
	var names []string
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	for pages := 1; pages <= 10_000; pages++ {
		page, _ := s.listPage(t, q)
		for _, f := range page.Files {
			names = append(names, f.Name)
		}
		if page.NextCursor == nil {
			return names, pages
		}
		q.Set("cursor", *page.NextCursor)
	}
	require.FailNow(t, "the listing did not end")
	return nil, 0
}

func TestListPagesOverAThousandFiles(t *testing.T) {
	s := newServer(t, options{})
	var names []string
	for i := range 2345 {
		names = append(names, fmt.Sprintf("f%04d.txt", i))
	}
	// Byte order, not a walk that sorts each folder: "f-x.txt" and
	// "f.txt" before "f/x.txt", which is before "f0000.txt".
	names = append(names, "f/x.txt", "f-x.txt", "f.txt", "f/y/z.txt", "g.txt")
	s.storeFiles(t, names...)
	slices.Sort(names)

	first, body := s.listPage(t, nil)
	require.Equal(t, 1000, len(first.Files), "the default page holds 1000 files")
	require.NotNil(t, first.NextCursor, "a page with more after it has a cursor")
	assert.Equal(t, names[:1000], namesOf(first))
	assert.Less(t, len(body), 100<<10)
	t.Logf("a default page of %d files is %d bytes", len(first.Files), len(body))

	got, pages := s.listAll(t, nil)
	assert.Equal(t, names, got, "every file exactly once, in byte order")
	assert.Equal(t, 3, pages)

	got, pages = s.listAll(t, url.Values{"limit": {"1000"}})
	assert.Equal(t, names, got)
	assert.Equal(t, 3, pages)
	got, pages = s.listAll(t, url.Values{"limit": {"700"}})
	assert.Equal(t, names, got)
	assert.Equal(t, 4, pages)

	// Exactly a page's worth: the last page has no cursor.
	page, _ := s.listPage(t, url.Values{"prefix": {"f0"}, "limit": {"1000"}})
	assert.Equal(t, 1000, len(page.Files))
	assert.Nil(t, page.NextCursor)

	// HEAD answers as GET does, without the body.
	resp, body := s.do(t, s.request(t, http.MethodHead, "/files?limit=5", nil, 0))
	s.waitServed(t)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.Empty(t, body)
}

func namesOf(p listPage) []string {
	var names []string
	for _, f := range p.Files {
		names = append(names, f.Name)
	}
	return names
}

func TestListLimitPrefixAndCursor(t *testing.T) {
	s := newServer(t, options{})
	s.storeFiles(t, "2026/a.pdf", "2026/b/c.pdf", "2026-notes.txt", "2026.txt", "2027/x.pdf", "top.txt")
	// Internal state is never listed.
	require.NoError(t, os.WriteFile(filepath.Join(s.dir, ".spillway-x.tmp"), nil, 0o644))

	got, pages := s.listAll(t, url.Values{"limit": {"1"}})
	assert.Equal(t, []string{"2026-notes.txt", "2026.txt", "2026/a.pdf", "2026/b/c.pdf", "2027/x.pdf", "top.txt"}, got)
	assert.Equal(t, 6, pages)

	for prefix, want := range map[string][]string{
		"2026/":   {"2026/a.pdf", "2026/b/c.pdf"},
		"2026":    {"2026-notes.txt", "2026.txt", "2026/a.pdf", "2026/b/c.pdf"},
		"2026/b/": {"2026/b/c.pdf"},
		"2026/a":  {"2026/a.pdf"},
		"2028/":   nil,
		"top.txt": {"top.txt"},
	} {
		for _, limit := range []string{"1", "2", "1000"} {
			got, _ := s.listAll(t, url.Values{"prefix": {prefix}, "limit": {limit}})
			assert.Equal(t, want, got, "prefix %q, limit %s", prefix, limit)
		}
	}

	// The cursor is opaque, but it is positional: files added before it
	// are not listed, files added after it are, and a file removed meanwhile
	// (the cursor's own among them) skips nothing.
	page, _ := s.listPage(t, url.Values{"limit": {"2"}})
	require.Equal(t, []string{"2026-notes.txt", "2026.txt"}, namesOf(page))
	require.NotNil(t, page.NextCursor)
	assert.NotContains(t, *page.NextCursor, "2026", "the cursor is encoded")
	s.storeFiles(t, "1999.txt", "2026/0.pdf")
	require.NoError(t, os.Remove(filepath.Join(s.dir, "2026.txt")))
	require.NoError(t, os.Remove(filepath.Join(s.dir, "2026", "a.pdf")))
	got, _ = s.listAll(t, url.Values{"limit": {"2"}, "cursor": {*page.NextCursor}})
	assert.Equal(t, []string{"2026/0.pdf", "2026/b/c.pdf", "2027/x.pdf", "top.txt"}, got)

	// An empty cursor or prefix is none; the cursor of a name that is not
	// stored lists what follows it.
	got, _ = s.listAll(t, url.Values{"cursor": {""}, "prefix": {""}})
	assert.Equal(t, []string{"1999.txt", "2026-notes.txt", "2026/0.pdf", "2026/b/c.pdf", "2027/x.pdf", "top.txt"}, got)
	got, _ = s.listAll(t, url.Values{"cursor": {base64.RawURLEncoding.EncodeToString([]byte("2026/a"))}})
	assert.Equal(t, []string{"2026/b/c.pdf", "2027/x.pdf", "top.txt"}, got)
}

func TestListRefusesBadQueries(t *testing.T) {
	s := newServer(t, options{})
	s.storeFiles(t, "a.txt")
	const (
		badLimit  = "limit must be an integer from 1 to 1000"
		badCursor = "cursor must be a next_cursor from an earlier page"
		badPrefix = "prefix must be a folder such as a/b/ or the start of a name"
		badQuery  = "the query string is malformed"
	)
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	// The client gets bad_query's fixed message; the log says which
	// parameter was wrong.
	for _, c := range []struct{ query, detail string }{
		{"limit=0", badLimit},
		{"limit=-1", badLimit},
		{"limit=1001", badLimit},
		{"limit=99999999999999999999", badLimit},
		{"limit=abc", badLimit},
		{"limit=1.5", badLimit},
		{"limit=", badLimit},
		{"limit=%201", badLimit},
		{"cursor=not*base64", badCursor},
		{"cursor=" + b64("a.txt") + "%3D", badCursor}, // padded
		{"cursor=" + base64.StdEncoding.EncodeToString([]byte("a?>")), badCursor},
		{"cursor=YR", badCursor}, // trailing bits set: not canonical
		{"cursor=" + b64("../etc/passwd"), badCursor},
		{"cursor=" + b64(".spillway-uploads/x"), badCursor},
		{"cursor=" + b64("/abs"), badCursor},
		{"cursor=" + b64("a\x00b"), badCursor},
		{"cursor=" + b64(strings.Repeat("a/", 600)), badCursor},
		{"prefix=../", badPrefix},
		{"prefix=/a", badPrefix},
		{"prefix=.spillway-uploads/", badPrefix},
		{"prefix=a//", badPrefix},
		{"prefix=a%5Cb", badPrefix},
		{"prefix=a%00", badPrefix},
		{"prefix=" + strings.Repeat("a", 1025), badPrefix},
		{"limit=%zz", badQuery},
	} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			resp, body := s.do(t, s.request(t, method, "/files?"+c.query, nil, 0))
			s.waitServed(t)
			if method == http.MethodHead {
				assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "HEAD %s", c.query)
				continue
			}
			requireError(t, resp, body, http.StatusBadRequest, "bad_query")
			s.requireLogged(t, resp, c.detail)
		}
	}
}

// TestListPageIsBoundedInBytes lists long names made of characters that
// JSON escapes six bytes for one: a page of 1000 such names would pass a
// Function URL's 6 MB response cap, so a page stops short of its byte
// budget, and the cursor carries on.
func TestListPageIsBoundedInBytes(t *testing.T) {
	s := newServer(t, options{})
	seg := strings.Repeat("&", 250) // six bytes of JSON each
	dir := seg + "/" + seg + "/" + seg + "/" + strings.Repeat("&", 200)
	var names []string
	for i := range 1000 {
		names = append(names, fmt.Sprintf("%s/%04d&", dir, i))
	}
	s.storeFiles(t, names...)

	var got []string
	q := url.Values{}
	pages, largest, total := 0, 0, 0
	for pages < 100 {
		page, body := s.listPage(t, q)
		pages++
		largest, total = max(largest, len(body)), total+len(body)
		assert.LessOrEqual(t, len(body), 1<<20, "page %d", pages)
		got = append(got, namesOf(page)...)
		if page.NextCursor == nil {
			break
		}
		assert.Greater(t, len(body), 1<<20-16<<10, "a page cut short is nearly full")
		q.Set("cursor", *page.NextCursor)
	}
	assert.Equal(t, names, got)
	assert.Greater(t, pages, 4)
	t.Logf("1000 names of %d bytes: %d bytes of JSON in %d pages, the largest %d bytes", len(names[0]), total, pages, largest)
}

// With a retention, each file's expiry is its modification time plus the
// retention, in RFC 3339 UTC; without one, there is no expires field.
func TestListGivesEachFilesExpiry(t *testing.T) {
	modified := time.Date(2026, 3, 1, 10, 30, 15, 0, time.UTC)
	for _, c := range []struct {
		retention time.Duration
		want      string
	}{
		{0, ""},
		{36 * time.Hour, "2026-03-02T22:30:15Z"},
		{30 * 24 * time.Hour, "2026-03-31T10:30:15Z"},
	} {
		t.Run(c.retention.String(), func(t *testing.T) {
			s := newServer(t, options{retention: c.retention})
			s.storeFiles(t, "a/old.txt")
			require.NoError(t, os.Chtimes(filepath.Join(s.dir, "a", "old.txt"), modified, modified))
			page, body := s.listPage(t, nil)
			require.Len(t, page.Files, 1)
			assert.Equal(t, "2026-03-01T10:30:15Z", page.Files[0].Modified)
			assert.Equal(t, c.want, page.Files[0].Expires)
			if c.retention == 0 {
				assert.NotContains(t, string(body), "expires", "no retention, no field")
			}
		})
	}
}
