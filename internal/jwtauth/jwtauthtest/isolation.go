package jwtauthtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/wire"
)

// Target is a running server with per-user spaces, for RequireIsolation.
type Target struct {
	// URL is the server's base URL.
	URL string
	// A and B are bearer JWTs of two users whose spaces differ.
	A, B string
	// SpaceA and SpaceB are their folders as the shared token sees them,
	// such as "alice/".
	SpaceA, SpaceB string
	// Admin is the shared token, or empty when the server has none.
	Admin string
}

// RequireIsolation proves that user B can neither see nor change what
// user A stores or has in progress, by any route: the listing, downloads
// (GET and HEAD), deletes, overwrites, multipart uploads and their part
// URLs, tus uploads, and the Uppy routes with their form URLs. Each of A's
// uploads is then finished by A, to show that B's attempts left it whole.
func RequireIsolation(t *testing.T, tg Target) {
	t.Helper()
	a := &user{t: t, base: tg.URL, bearer: tg.A}
	b := &user{t: t, base: tg.URL, bearer: tg.B}

	// A stores a file whole, one in a form, and starts an upload of each
	// kind that can be resumed.
	resp, body := a.do(http.MethodPut, "/files/secret.txt", nil, []byte("alice's secret"))
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	assert.Equal(t, "/files/secret.txt", resp.Header.Get("Location"), "names are shown inside the space")
	var up wire.UploadResponse
	require.NoError(t, json.Unmarshal(body, &up))
	assert.Equal(t, "secret.txt", up.Files[0].Name)

	ct, form := formBody("notes.txt", []byte("notes"))
	resp, body = a.do(http.MethodPost, "/files", map[string]string{"Content-Type": ct}, form)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))

	var created wire.CreatedUpload
	a.json(http.MethodPost, "/uploads", wire.CreateUploadRequest{Name: "big.bin", Size: 10}, http.StatusCreated, &created)
	assert.Equal(t, "big.bin", created.Name)
	require.Len(t, created.Parts, 1)
	etag := a.putPart(created.Parts[0].URL, created.Parts[0].Headers, []byte("0123456789"))

	resp, body = a.do(http.MethodPost, "/tus/", map[string]string{
		"Tus-Resumable": "1.0.0", "Upload-Length": "10",
		"Upload-Metadata": "filename " + base64.StdEncoding.EncodeToString([]byte("t.bin")),
	}, nil)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	tusURL := resp.Header.Get("Location")
	require.True(t, strings.HasPrefix(tusURL, "/tus/"), tusURL)
	resp, body = a.do(http.MethodPatch, tusURL, tusChunk(0), []byte("01234"))
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))

	var uppy wire.S3CreateResponse
	a.json(http.MethodPost, "/s3/multipart", wire.S3CreateRequest{Filename: "u.bin", Type: "application/octet-stream",
		Metadata: map[string]any{"size": 10}}, http.StatusOK, &uppy)
	assert.Equal(t, "u.bin", uppy.Key)

	var params wire.S3Params
	a.json(http.MethodGet, "/s3/params?filename=form.txt&metadata%5Bsize%5D=4", nil, http.StatusOK, &params)

	// B sees none of it.
	for _, q := range []string{"", "?prefix=" + url.QueryEscape(tg.SpaceA), "?prefix=secret"} {
		assert.Empty(t, b.list(q), "B's listing %q", q)
	}
	for _, p := range []string{"/files/secret.txt", "/files/notes.txt", "/s3/objects/secret.txt"} {
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			resp, _ := b.do(m, p, nil, nil)
			assert.Equal(t, http.StatusNotFound, resp.StatusCode, "B's %s %s", m, p)
		}
	}
	// Out of B's space by a path: refused as a name, never resolved.
	for _, p := range []string{"/files/..%2F" + strings.TrimSuffix(tg.SpaceA, "/") + "%2Fsecret.txt",
		"/files/%2e%2e/" + tg.SpaceA + "secret.txt"} {
		b.requireError(http.MethodGet, p, nil, nil, http.StatusBadRequest, wire.CodeInvalidName)
	}
	b.requireError(http.MethodDelete, "/files/secret.txt", nil, nil, http.StatusNotFound, wire.CodeNotFound)
	// B's file of the same name is B's own, and leaves A's as it was.
	resp, body = b.do(http.MethodPut, "/files/secret.txt", nil, []byte("bob's"))
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))

	// A's upload IDs are unknown to B, on every route that takes one.
	id := created.ID
	b.requireError(http.MethodGet, "/uploads/"+id, nil, nil, http.StatusNotFound, wire.CodeUploadNotFound)
	b.requireError(http.MethodGet, "/uploads/"+id+"/parts", nil, nil, http.StatusNotFound, wire.CodeUploadNotFound)
	b.requireError(http.MethodPost, "/uploads/"+id+"/complete", nil,
		mustJSON(wire.CompleteRequest{Parts: []wire.CompletePart{{Number: 1, ETag: etag}}}), http.StatusNotFound, wire.CodeUploadNotFound)
	b.requireError(http.MethodDelete, "/uploads/"+id, nil, nil, http.StatusNotFound, wire.CodeUploadNotFound)

	tusHdr := map[string]string{"Tus-Resumable": "1.0.0"}
	resp, _ = b.do(http.MethodHead, tusURL, tusHdr, nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "B's tus HEAD")
	b.requireError(http.MethodPatch, tusURL, tusChunk(5), []byte("56789"), http.StatusNotFound, wire.CodeTusUploadNotFound)
	b.requireError(http.MethodDelete, tusURL, tusHdr, nil, http.StatusNotFound, wire.CodeTusUploadNotFound)

	for _, key := range []string{"u.bin", tg.SpaceA + "u.bin"} {
		q := "?key=" + url.QueryEscape(key)
		base := "/s3/multipart/" + url.PathEscape(uppy.UploadID)
		b.requireError(http.MethodGet, base+q, nil, nil, http.StatusNotFound, wire.CodeUploadNotFound)
		b.requireError(http.MethodGet, base+"/1"+q, nil, nil, http.StatusNotFound, wire.CodeUploadNotFound)
		b.requireError(http.MethodPost, base+"/complete"+q, nil,
			mustJSON(wire.S3CompleteRequest{Parts: []wire.S3CompletePart{{PartNumber: 1, ETag: etag}}}), http.StatusNotFound, wire.CodeUploadNotFound)
		b.requireError(http.MethodDelete, base+q, nil, nil, http.StatusNotFound, wire.CodeUploadNotFound)
	}

	// A's form URL carries A's space under its signature: moved to B's
	// space, into the key, or dropped, it is refused.
	anon := &user{t: t, base: tg.URL}
	pu, err := url.Parse(params.URL)
	require.NoError(t, err)
	for _, edit := range []func(url.Values){
		func(v url.Values) { v.Set("space", tg.SpaceB) },
		func(v url.Values) { v.Del("space") },
		func(v url.Values) { v.Del("space"); v.Set("key", tg.SpaceA+v.Get("key")) },
	} {
		v := pu.Query()
		edit(v)
		forged := *pu
		forged.RawQuery = v.Encode()
		ct, form := formBody("form.txt", []byte("evil"))
		anon.requireError(http.MethodPost, forged.String(), map[string]string{"Content-Type": ct}, form, http.StatusForbidden, wire.CodeBadSignature)
	}

	// A part URL the server signed for B's own upload does not reach A's.
	var bUp wire.CreatedUpload
	b.json(http.MethodPost, "/uploads", wire.CreateUploadRequest{Name: "b.bin", Size: 10}, http.StatusCreated, &bUp)
	if pu := bUp.Parts[0].URL; strings.HasPrefix(pu, tg.URL+"/uploads/") {
		swapped := strings.Replace(pu, "/uploads/"+bUp.ID+"/", "/uploads/"+id+"/", 1)
		anon.requireError(http.MethodPut, swapped, nil, []byte("9999999999"), http.StatusForbidden, wire.CodeBadSignature)
	}
	resp, _ = b.do(http.MethodDelete, "/uploads/"+bUp.ID, nil, nil)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	// A's file and uploads are whole: A reads, finishes and lists them.
	assert.Equal(t, "alice's secret", a.read("/files/secret.txt"))
	assert.Equal(t, "bob's", b.read("/files/secret.txt"))
	var done wire.UploadResponse
	a.json(http.MethodPost, "/uploads/"+id+"/complete", wire.CompleteRequest{Parts: []wire.CompletePart{{Number: 1, ETag: etag}}}, http.StatusCreated, &done)
	assert.Equal(t, "big.bin", done.Files[0].Name)

	resp, body = a.do(http.MethodPatch, tusURL, tusChunk(5), []byte("56789"))
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	assert.Equal(t, "/files/t.bin", resp.Header.Get("Spillway-File"))

	var signed wire.S3SignedPart
	a.json(http.MethodGet, "/s3/multipart/"+url.PathEscape(uppy.UploadID)+"/1?key=u.bin", nil, http.StatusOK, &signed)
	uppyETag := a.putPart(signed.URL, signed.Headers, []byte("abcdefghij"))
	var uppyDone wire.S3CompleteResponse
	a.json(http.MethodPost, "/s3/multipart/"+url.PathEscape(uppy.UploadID)+"/complete?key=u.bin",
		wire.S3CompleteRequest{Parts: []wire.S3CompletePart{{PartNumber: 1, ETag: uppyETag}}}, http.StatusOK, &uppyDone)
	assert.Equal(t, "u.bin", uppyDone.Key)

	ct, form = formBody("form.txt", []byte("form"))
	resp, body = anon.do(http.MethodPost, params.URL, map[string]string{"Content-Type": ct}, form)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	assert.Equal(t, "/files/form.txt", resp.Header.Get("Location"))

	aNames := []string{"big.bin", "form.txt", "notes.txt", "secret.txt", "t.bin", "u.bin"}
	assert.Equal(t, aNames, a.list(""))
	assert.Equal(t, []string{"secret.txt"}, b.list(""))
	assert.Equal(t, "abcdefghij", a.read("/files/u.bin"))
	assert.Equal(t, "form", a.read("/files/form.txt"))

	if tg.Admin != "" {
		// The shared token sees every space, as folders of one store.
		admin := &user{t: t, base: tg.URL, bearer: tg.Admin}
		var want []string
		for _, n := range aNames {
			want = append(want, tg.SpaceA+n)
		}
		want = append(want, tg.SpaceB+"secret.txt")
		slices.Sort(want)
		assert.Equal(t, want, admin.list(""))
		assert.Equal(t, "alice's secret", admin.read("/files/"+tg.SpaceA+"secret.txt"))
	}
}

// user makes requests with one bearer token.
type user struct {
	t      *testing.T
	base   string
	bearer string
}

// client follows no redirect: a download's redirect to a presigned URL
// is followed by read, without the bearer token.
var client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (u *user) do(method, path string, hdr map[string]string, body []byte) (*http.Response, []byte) {
	u.t.Helper()
	target := path
	if !strings.HasPrefix(path, "http") {
		target = u.base + path
	}
	req, err := http.NewRequestWithContext(u.t.Context(), method, target, bytes.NewReader(body))
	require.NoError(u.t, err)
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	if u.bearer != "" && strings.HasPrefix(target, u.base) {
		req.Header.Set("Authorization", "Bearer "+u.bearer)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	require.NoError(u.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(u.t, err)
	return resp, data
}

func (u *user) json(method, path string, in any, want int, out any) {
	u.t.Helper()
	var body []byte
	if in != nil {
		body = mustJSON(in)
	}
	resp, data := u.do(method, path, map[string]string{"Content-Type": "application/json"}, body)
	require.Equal(u.t, want, resp.StatusCode, "%s %s: %s", method, path, data)
	if out != nil {
		require.NoError(u.t, json.Unmarshal(data, out), string(data))
	}
}

func (u *user) requireError(method, path string, hdr map[string]string, body []byte, status int, code wire.Code) {
	u.t.Helper()
	resp, data := u.do(method, path, hdr, body)
	require.Equal(u.t, status, resp.StatusCode, "%s %s: %s", method, path, data)
	var e wire.ErrorResponse
	require.NoError(u.t, json.Unmarshal(data, &e), string(data))
	assert.Equal(u.t, code, e.Error.Code, "%s %s", method, path)
}

// read downloads a file, following a redirect to a presigned URL.
func (u *user) read(path string) string {
	u.t.Helper()
	resp, data := u.do(http.MethodGet, path, nil, nil)
	if resp.StatusCode == http.StatusTemporaryRedirect || resp.StatusCode == http.StatusFound {
		resp, data = u.do(http.MethodGet, resp.Header.Get("Location"), nil, nil)
	}
	require.Equal(u.t, http.StatusOK, resp.StatusCode, "GET %s: %s", path, data)
	return string(data)
}

// list returns the names of GET /files with query q ("" or "?…").
func (u *user) list(q string) []string {
	u.t.Helper()
	var l wire.ListResponse
	u.json(http.MethodGet, "/files"+q, nil, http.StatusOK, &l)
	names := []string{}
	for _, f := range l.Files {
		names = append(names, f.Name)
	}
	return names
}

// putPart sends a part to its URL, which may be the server's or S3's
// presigned one, and returns its ETag.
func (u *user) putPart(partURL string, hdr map[string]string, data []byte) string {
	u.t.Helper()
	resp, body := u.do(http.MethodPut, partURL, hdr, data)
	require.Equal(u.t, http.StatusOK, resp.StatusCode, "part PUT: %s", body)
	etag := resp.Header.Get("ETag")
	require.NotEmpty(u.t, etag)
	return etag
}

func tusChunk(offset int64) map[string]string {
	return map[string]string{"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream",
		"Upload-Offset": fmt.Sprint(offset)}
}

func formBody(name string, data []byte) (string, []byte) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", name)
	fw.Write(data)
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
