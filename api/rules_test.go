package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/hook"
	"spillway/internal/jwtauth/jwtauthtest"
	"spillway/internal/uploadtest"
	"spillway/wire"
)

// The hooks and content rules on every route that creates a file, against
// the directory store; the S3 side runs in functions/upload's tests.

func newHookClient(url string) *hook.Client {
	return hook.New(hook.Config{URL: url, Secret: []byte(uploadtest.HookSecret), Backoff: time.Millisecond})
}

// uppyUpload runs @uppy/aws-s3's multipart calls for a one-part file.
func (s *server) uppyUpload(t *testing.T, name string, data []byte) (*http.Response, []byte) {
	t.Helper()
	resp, body := s.companion(t, http.MethodPost, "/s3/multipart", map[string]any{"filename": name, "metadata": map[string]any{"size": len(data)}})
	s.waitServed(t)
	if resp.StatusCode != http.StatusOK {
		return resp, body
	}
	var created wire.S3CreateResponse
	require.NoError(t, json.Unmarshal(body, &created))
	q := "?" + url.Values{"key": {created.Key}}.Encode()
	up := "/s3/multipart/" + created.UploadID
	resp, body = s.companion(t, http.MethodGet, up+"/1"+q, nil)
	s.waitServed(t)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var signed wire.S3SignedPart
	require.NoError(t, json.Unmarshal(body, &signed))
	put, err := http.NewRequest(http.MethodPut, signed.URL, bytes.NewReader(data))
	require.NoError(t, err)
	resp, body = s.do(t, put)
	s.waitServed(t)
	if resp.StatusCode != http.StatusOK {
		return resp, body
	}
	resp, body = s.companion(t, http.MethodPost, up+"/complete"+q, wire.S3CompleteRequest{Parts: []wire.S3CompletePart{{PartNumber: 1, ETag: resp.Header.Get("ETag")}}})
	s.waitServed(t)
	return resp, body
}

// uppyForm sends a file as @uppy/aws-s3 sends a small one: params, then
// the form POST.
func (s *server) uppyForm(t *testing.T, name string, data []byte) (*http.Response, []byte) {
	t.Helper()
	resp, body := s.companion(t, http.MethodGet, "/s3/params?"+url.Values{"filename": {name}, "metadata[size]": {strconv.Itoa(len(data))}}.Encode(), nil)
	s.waitServed(t)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var p wire.S3Params
	require.NoError(t, json.Unmarshal(body, &p))
	resp, body = postForm(t, s, p, data)
	s.waitServed(t)
	return resp, body
}

func (s *server) requireNoFile(t *testing.T, name string) {
	t.Helper()
	_, err := os.Stat(filepath.Join(s.dir, name))
	require.ErrorIs(t, err, os.ErrNotExist, "%s must not be stored", name)
}

func TestHooksOnEveryRoute(t *testing.T) {
	hr := uploadtest.NewHookReceiver(t)
	s := newServer(t, options{token: "t0k", hooks: newHookClient(hr.URL)})
	requireHooksOnEveryRoute(t, s, hr, "", "")
}

// With per-user spaces an event names the file as stored, in the user's
// folder, and the user it belongs to.
func TestHooksNameTheUsersFile(t *testing.T) {
	hr := uploadtest.NewHookReceiver(t)
	is := jwtauthtest.New(t)
	s := newJWTServer(t, is, options{hooks: newHookClient(hr.URL)})
	s.bearer = is.Token(t, "alice", nil)
	requireHooksOnEveryRoute(t, s, hr, "alice/", "alice")
}

// requireHooksOnEveryRoute uploads through every route of s, whose bearer
// is user's with space as folder, and checks the events hr receives.
func requireHooksOnEveryRoute(t *testing.T, s *server, hr *uploadtest.HookReceiver, space, user string) {
	t.Helper()
	data := []byte("the bytes of a hooked file")
	sum := sha256.Sum256(data)
	for _, rt := range s.uploadRoutes() {
		name := rt.name + ".txt"
		resp, body := rt.send(t, name, data)
		require.Equal(t, rt.ok, resp.StatusCode, "%s: %s", rt.via, body)
		id := resp.Header.Get("X-Request-Id")
		evs := hr.Events()
		require.Len(t, evs, 2, "%s: %+v", rt.via, evs)
		pre, post := evs[0], evs[1]
		assert.Equal(t, hook.PreCreate, pre.Type)
		assert.Equal(t, rt.via, pre.Route)
		assert.Equal(t, space+name, pre.Name)
		assert.Equal(t, user, pre.User, rt.via)
		assert.Empty(t, pre.SHA256)
		assert.Equal(t, hook.PostFinish, post.Type)
		assert.Equal(t, rt.via, post.Route)
		assert.Equal(t, space+name, post.Name)
		assert.Equal(t, user, post.User, rt.via)
		assert.Equal(t, int64(len(data)), post.Size)
		assert.Equal(t, hex.EncodeToString(sum[:]), post.SHA256, rt.via)
		assert.NotEmpty(t, post.CRC64NVME, rt.via)
		assert.Equal(t, id, post.RequestID, "%s: the post-finish names the request that finished the file", rt.via)
		got, err := os.ReadFile(filepath.Join(s.dir, space+name))
		require.NoError(t, err)
		assert.Equal(t, data, got)

		// A name the hook refuses: 403 with its message, nothing stored, no
		// post-finish.
		deny := "deny-" + name
		resp, body = rt.send(t, deny, data)
		requireError(t, resp, body, http.StatusForbidden, "hook_refused")
		var e wire.ErrorResponse
		require.NoError(t, json.Unmarshal(body, &e))
		assert.Equal(t, uploadtest.RefusalMessage, e.Error.Message, rt.via)
		evs = hr.Events()
		require.Len(t, evs, 1, "%s: %+v", rt.via, evs)
		assert.Equal(t, hook.PreCreate, evs[0].Type)
		s.requireNoFile(t, space+deny)
		requireNoUploads(t, s.dir)
	}
}

// requireNoUploads checks that no multipart or tus upload is left open:
// a finished tus upload's record may stay.
func requireNoUploads(t *testing.T, dir string) {
	t.Helper()
	root := filepath.Join(dir, ".spillway-uploads")
	var left []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			rel += "/"
		}
		switch rel {
		case ".spillway-uploads/", ".spillway-uploads/tus/":
		default:
			if !uploadtest.FinishedTusRecord(t, dir, rel) {
				left = append(left, rel)
			}
		}
		return nil
	})
	require.NoError(t, err)
	assert.Empty(t, left, "uploads left open")
}

func TestHookDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	down := "http://" + l.Addr().String() + "/hook"
	require.NoError(t, l.Close())

	// Pre-create unanswered: 503 with Retry-After, nothing stored.
	s := newServer(t, options{token: "t0k", hooks: newHookClient(down)})
	resp, body := s.tokenPut(t, "a.txt", []byte("abc"))
	requireError(t, resp, body, http.StatusServiceUnavailable, "hook_unavailable")
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	s.requireNoFile(t, "a.txt")
	resp, body = s.tokenTus(t, "b.txt", []byte("abc"))
	requireError(t, resp, body, http.StatusServiceUnavailable, "hook_unavailable")
	requireNoUploads(t, s.dir)

	// Post-finish answered 5xx: retried to the client's bound, then the
	// file stays and the upload is answered 201.
	hr := uploadtest.NewHookReceiver(t)
	hr.SetPostFinishStatus(http.StatusBadGateway)
	s = newServer(t, options{token: "t0k", hooks: newHookClient(hr.URL)})
	resp, body = s.tokenPut(t, "c.txt", []byte("abc"))
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	evs := hr.Events()
	require.Len(t, evs, 1+hook.DefaultAttempts)
	for _, ev := range evs[1:] {
		assert.Equal(t, hook.PostFinish, ev.Type)
	}
	got, err := os.ReadFile(filepath.Join(s.dir, "c.txt"))
	require.NoError(t, err)
	assert.Equal(t, "abc", string(got))
	assert.Contains(t, s.logs.String(), "post-finish hook failed")
}

var (
	pngBytes = append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0}, 100)...)
	pdfBytes = []byte("%PDF-1.7\n1 0 obj << >> endobj\n%%EOF\n")
	txtBytes = []byte("plain words, whatever the name says\n")
)

func TestAllowTypesOnEveryRoute(t *testing.T) {
	s := newServer(t, options{token: "t0k", allowTypes: "image/*,application/pdf"})
	for _, rt := range s.uploadRoutes() {
		// The extension lies both ways: the bytes decide.
		good := rt.name + "-report.txt"
		resp, body := rt.send(t, good, pdfBytes)
		require.Equal(t, rt.ok, resp.StatusCode, "%s: %s", rt.name, body)
		resp, body = s.companion(t, http.MethodGet, "/files/"+good, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "application/pdf", resp.Header.Get("Content-Type"), rt.name)
		assert.Contains(t, resp.Header.Get("Content-Disposition"), "attachment", rt.name)
		assert.Equal(t, pdfBytes, body)
		s.waitServed(t)

		bad := rt.name + "-photo.png"
		resp, body = rt.send(t, bad, txtBytes)
		requireError(t, resp, body, http.StatusUnsupportedMediaType, "type_not_allowed")
		s.requireNoFile(t, bad)
		requireNoUploads(t, s.dir)
	}
	// A PNG is shown inline as one.
	resp, body := s.tokenPut(t, "pic.bin", pngBytes)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	resp, _ = s.companion(t, http.MethodHead, "/files/pic.bin", nil)
	s.waitServed(t)
	assert.Equal(t, "image/png", resp.Header.Get("Content-Type"))
	assert.Empty(t, resp.Header.Get("Content-Disposition"))

	// One refused file in a form refuses the form: nothing is stored.
	resp, body = s.tokenPostFiles(t, map[string][]byte{"ok.pdf": pdfBytes, "no.png": txtBytes})
	requireError(t, resp, body, http.StatusUnsupportedMediaType, "type_not_allowed")
	s.requireNoFile(t, "ok.pdf")
	s.requireNoFile(t, "no.png")
}

// uploadRoute is one way to upload a file through a server.
type uploadRoute struct {
	name string // this way's own, for names of files
	via  string // the route's label, as hooks and metrics give it
	ok   int    // the status of a success
	send func(t *testing.T, name string, data []byte) (*http.Response, []byte)
}

// uploadRoutes are the ways to upload one file through s with its bearer:
// each route, and both steps of tus and of Uppy's.
func (s *server) uploadRoutes() []uploadRoute {
	return []uploadRoute{
		{"put", "put", http.StatusCreated, s.tokenPut},
		{"form", "form", http.StatusCreated, func(t *testing.T, name string, data []byte) (*http.Response, []byte) {
			return s.tokenPostFiles(t, map[string][]byte{name: data})
		}},
		{"multipart", "multipart", http.StatusCreated, s.tokenMultipart},
		{"tus", "tus", http.StatusCreated, s.tokenTus},
		{"tuspatch", "tus", http.StatusNoContent, s.tokenTusPatch},
		{"uppy", "uppy", http.StatusOK, s.uppyUpload},
		{"uppyform", "uppy", http.StatusCreated, s.uppyForm},
	}
}

// The token-carrying senders.

func (s *server) authed(req *http.Request) *http.Request {
	req.Header.Set("Authorization", "Bearer "+s.bearer)
	return req
}

func (s *server) tokenPut(t *testing.T, name string, data []byte) (*http.Response, []byte) {
	t.Helper()
	resp, body := s.do(t, s.authed(s.request(t, http.MethodPut, "/files/"+name, bytes.NewReader(data), int64(len(data)))))
	s.waitServed(t)
	return resp, body
}

func (s *server) tokenPostFiles(t *testing.T, files map[string][]byte) (*http.Response, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for name, data := range files {
		fw, err := mw.CreateFormFile("file", name)
		require.NoError(t, err)
		fw.Write(data)
	}
	require.NoError(t, mw.Close())
	req := s.authed(s.request(t, http.MethodPost, "/files", &buf, int64(buf.Len())))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, body := s.do(t, req)
	s.waitServed(t)
	return resp, body
}

func (s *server) tokenMultipart(t *testing.T, name string, data []byte) (*http.Response, []byte) {
	t.Helper()
	cr, _ := json.Marshal(wire.CreateUploadRequest{Name: name, Size: int64(len(data))})
	resp, body := s.do(t, s.authed(s.request(t, http.MethodPost, "/uploads", bytes.NewReader(cr), int64(len(cr)))))
	s.waitServed(t)
	if resp.StatusCode != http.StatusCreated {
		return resp, body
	}
	var created wire.CreatedUpload
	require.NoError(t, json.Unmarshal(body, &created))
	require.Len(t, created.Parts, 1)
	req, err := http.NewRequestWithContext(t.Context(), created.Parts[0].Method, created.Parts[0].URL, bytes.NewReader(data))
	require.NoError(t, err)
	resp, body = s.do(t, req)
	s.waitServed(t)
	if resp.StatusCode != http.StatusOK {
		return resp, body
	}
	cr, _ = json.Marshal(wire.CompleteRequest{Parts: []wire.CompletePart{{Number: 1, ETag: resp.Header.Get("ETag")}}})
	resp, body = s.do(t, s.authed(s.request(t, http.MethodPost, "/uploads/"+created.ID+"/complete", bytes.NewReader(cr), int64(len(cr)))))
	s.waitServed(t)
	return resp, body
}

func (s *server) tokenTus(t *testing.T, name string, data []byte) (*http.Response, []byte) {
	t.Helper()
	req := s.authed(s.request(t, http.MethodPost, "/tus/", bytes.NewReader(data), int64(len(data))))
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", strconv.Itoa(len(data)))
	req.Header.Set("Upload-Metadata", "filename "+base64.StdEncoding.EncodeToString([]byte(name)))
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	resp, body := s.do(t, req)
	s.waitServed(t)
	return resp, body
}

// tokenTusPatch creates a tus upload, then sends its bytes in one PATCH.
func (s *server) tokenTusPatch(t *testing.T, name string, data []byte) (*http.Response, []byte) {
	t.Helper()
	req := s.authed(s.request(t, http.MethodPost, "/tus/", nil, 0))
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", strconv.Itoa(len(data)))
	req.Header.Set("Upload-Metadata", "filename "+base64.StdEncoding.EncodeToString([]byte(name)))
	resp, body := s.do(t, req)
	s.waitServed(t)
	if resp.StatusCode != http.StatusCreated {
		return resp, body
	}
	req = s.authed(s.request(t, http.MethodPatch, resp.Header.Get("Location"), bytes.NewReader(data), int64(len(data))))
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", "0")
	resp, body = s.do(t, req)
	s.waitServed(t)
	return resp, body
}

// A finished tus upload's last PATCH sent again is answered as before,
// and the hook does not hear of the file a second time.
func TestTusReplayedLastPatchTellsTheHookOnce(t *testing.T) {
	hr := uploadtest.NewHookReceiver(t)
	s := newServer(t, options{hooks: newHookClient(hr.URL)})
	data := []byte("tus bytes")
	loc := s.tusCreate(t, "replayed.txt", int64(len(data)))
	resp, body := s.tusPatch(t, loc, 0, data)
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	require.Len(t, hr.Events(), 2)
	resp, body = s.tusPatch(t, loc, int64(len(data)), nil)
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	assert.NotEmpty(t, resp.Header.Get("Spillway-Sha256"))
	assert.Empty(t, hr.Events(), "the hook heard of the file once")
}
