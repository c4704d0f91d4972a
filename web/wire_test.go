package web_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/web"
	"spillway/wire"
)

type contractEntry struct {
	what   string // for messages
	typ    any    // the wire type
	fields []string
}

// pageContract is what the page's script reads from the API's responses
// and writes into its requests, field by field, with the wire type that
// defines each. TestPageReadsTheWireTypes holds the script, the wire types
// and the server's real responses to it.
var pageContract = []contractEntry{
	{"error body", wire.ErrorResponse{}, []string{"error"}},
	{"error", wire.Error{}, []string{"code", "message", "request_id"}},
	{"201 of an upload", wire.UploadResponse{}, []string{"files"}},
	{"stored file", wire.FileResult{}, []string{"size", "sha256", "spool"}},
	{"POST /uploads request", wire.CreateUploadRequest{}, []string{"name", "size", "sha256", "crc64nvme", "part_size", "part_crc64nvme"}},
	{"POST /uploads 201", wire.CreatedUpload{}, []string{"id", "part_size", "part_count", "parts", "next_from"}},
	{"part URL page", wire.PartURLPage{}, []string{"parts", "next_from"}},
	{"part URL", wire.PartURL{}, []string{"n", "url", "method", "headers", "expires"}},
	{"completion request", wire.CompleteRequest{}, []string{"parts"}},
	{"completed part", wire.CompletePart{}, []string{"n", "etag"}},
	{"GET /files page", wire.ListResponse{}, []string{"files", "next_cursor"}},
	{"listed file", wire.ListEntry{}, []string{"name", "size", "modified"}},
}

// jsonNames returns the JSON names of t's fields, embedded structs' too.
func jsonNames(t reflect.Type) []string {
	var names []string
	for f := range t.Fields() {
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			names = append(names, jsonNames(f.Type)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		if name != "-" {
			names = append(names, name)
		}
	}
	return names
}

// allJSONNames returns the JSON names of every type the contract names
// and of the types their fields hold.
func allJSONNames() map[string]bool {
	names := map[string]bool{}
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] || t.PkgPath() != "spillway/wire" {
			return
		}
		seen[t] = true
		for _, n := range jsonNames(t) {
			names[n] = true
		}
		for f := range t.Fields() {
			walk(f.Type)
		}
	}
	for _, c := range pageContract {
		walk(reflect.TypeOf(c.typ))
	}
	return names
}

// pageScript returns the script of the page as the server serves it.
func pageScript(t *testing.T) string {
	t.Helper()
	rec := httptest.NewRecorder()
	web.ServePage(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	m := regexp.MustCompile(`(?s)<script>(.*)</script>`).FindStringSubmatch(rec.Body.String())
	require.NotNil(t, m, "the page has no script")
	return m[1]
}

// snakeCase matches the property reads of a script in the API's style:
// the page's own names are camelCase, so these can only be the API's.
var snakeCase = regexp.MustCompile(`\.([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\b`)

// TestPageReadsTheWireTypes ties the upload page's script to the wire
// types: every field it reads or writes is a field of the wire type that
// defines it, the script does read (or write) it, every snake_case
// property it reads is one of the API's, and the server's real responses
// carry the fields. Renaming a field on either side fails here, without a
// browser; the Chromium tests then run the page against the server.
func TestPageReadsTheWireTypes(t *testing.T) {
	script := pageScript(t)
	for _, c := range pageContract {
		names := jsonNames(reflect.TypeOf(c.typ))
		for _, f := range c.fields {
			assert.Contains(t, names, f, "%s: the page uses %q, which %T does not have", c.what, f, c.typ)
			read := regexp.MustCompile(`\.` + f + `\b|[{,]\s*` + f + `\s*[:,}]`)
			assert.Regexp(t, read, script, "%s: the page neither reads nor writes %q", c.what, f)
		}
	}

	known := allJSONNames()
	for _, m := range snakeCase.FindAllStringSubmatch(script, -1) {
		assert.True(t, known[m[1]], "the page reads .%s, which no wire type has", m[1])
	}

	srv := startServer(t, "")
	call := func(method, path string, body any) map[string]any {
		t.Helper()
		var in io.Reader = http.NoBody
		switch b := body.(type) {
		case string:
			in = strings.NewReader(b)
		case nil:
		default:
			data, err := json.Marshal(b)
			require.NoError(t, err)
			in = bytes.NewReader(data)
		}
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, in)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var got map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&got), "%s %s", method, path)
		return got
	}
	// has checks that a real response carries the fields the page reads
	// from it.
	has := func(what string, obj any, typ any) {
		t.Helper()
		m, ok := obj.(map[string]any)
		require.True(t, ok, "%s: %v is no object", what, obj)
		i := slices.IndexFunc(pageContract, func(c contractEntry) bool {
			return reflect.TypeOf(c.typ) == reflect.TypeOf(typ)
		})
		require.GreaterOrEqual(t, i, 0, "%T is not in the contract", typ)
		for _, f := range pageContract[i].fields {
			if f == "next_cursor" || f == "headers" {
				continue // omitted when empty, as here
			}
			assert.Contains(t, m, f, "%s: the server's response has no %q: %v", what, f, m)
		}
	}

	stored := call(http.MethodPut, "/files/a.txt", "hello")
	has("PUT /files/a.txt", stored, wire.UploadResponse{})
	has("PUT /files/a.txt", stored["files"].([]any)[0], wire.FileResult{})

	refused := call(http.MethodPut, "/files/a.txt", "again")
	has("PUT /files/a.txt again", refused, wire.ErrorResponse{})
	has("PUT /files/a.txt again", refused["error"], wire.Error{})

	list := call(http.MethodGet, "/files", nil)
	has("GET /files", list, wire.ListResponse{})
	has("GET /files", list["files"].([]any)[0], wire.ListEntry{})

	created := call(http.MethodPost, "/uploads", wire.CreateUploadRequest{Name: "b.bin", Size: 10})
	has("POST /uploads", created, wire.CreatedUpload{})
	has("POST /uploads", created["parts"].([]any)[0], wire.PartURL{})
	page := call(http.MethodGet, "/uploads/"+created["id"].(string)+"/parts", nil)
	has("GET /uploads/{id}/parts", page, wire.PartURLPage{})
}
