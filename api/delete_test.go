package api_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
)

func TestDeleteFile(t *testing.T) {
	s := newServer(t, options{})
	put := func(f uploadtest.File) {
		t.Helper()
		resp, body := s.send(t, uploadtest.Case{Mode: uploadtest.RawLength, Files: []uploadtest.File{f}})
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
		s.waitServed(t)
	}
	call := func(method, path string) (*http.Response, []byte) {
		t.Helper()
		resp, body := s.do(t, s.request(t, method, path, nil, 0))
		s.waitServed(t)
		return resp, body
	}
	put(uploadtest.File{Name: "2026/report.pdf", Seed: 1, Size: 1000})
	put(uploadtest.File{Name: "2026/q1/notes.txt", Seed: 2, Size: 10})

	resp, body := call(http.MethodDelete, "/files/2026/report.pdf")
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	assert.Empty(t, body)
	assert.NotEmpty(t, resp.Header.Get("X-Request-Id"))

	s.requireErrors(t, []errorCase{
		{http.MethodDelete, "/files/2026/report.pdf", http.StatusNotFound, "not_found"},
		{http.MethodGet, "/files/2026/report.pdf", http.StatusNotFound, "not_found"},
		{http.MethodDelete, "/files/missing.bin", http.StatusNotFound, "not_found"},
		{http.MethodDelete, "/files/2026", http.StatusNotFound, "not_found"},
		{http.MethodDelete, "/files/2026/q1", http.StatusNotFound, "not_found"},
		{http.MethodDelete, "/files/2026/q1/notes.txt/x", http.StatusNotFound, "not_found"},
		{http.MethodDelete, "/files/..%2Fx", http.StatusBadRequest, "invalid_name"},
		{http.MethodDelete, "/files/a%5Cb", http.StatusBadRequest, "invalid_name"},
		{http.MethodDelete, "/files/", http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodDelete, "/files", http.StatusMethodNotAllowed, "method_not_allowed"},
	})
	uploadtest.RequireFile(t, uploadtest.File{Name: "2026/q1/notes.txt", Seed: 2, Size: 10}, s.dir+"/2026/q1/notes.txt")

	// The name can be used again, and a folder emptied by a delete can
	// become a file.
	again := uploadtest.File{Name: "2026/report.pdf", Seed: 3, Size: 20}
	put(again)
	uploadtest.RequireFile(t, again, s.dir+"/"+again.Name)
	resp, body = call(http.MethodDelete, "/files/2026/q1/notes.txt")
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	put(uploadtest.File{Name: "2026/q1", Seed: 4, Size: 5})
}

func TestDeleteIsInAllow(t *testing.T) {
	s := newServer(t, options{})
	resp, body := s.do(t, s.request(t, http.MethodPatch, "/files/a.txt", nil, 0))
	requireError(t, resp, body, http.StatusMethodNotAllowed, "method_not_allowed")
	assert.Equal(t, "GET, HEAD, PUT, DELETE", resp.Header.Get("Allow"))
	s.waitServed(t)
}

func TestDeleteNeedsTheToken(t *testing.T) {
	s := newServer(t, options{token: "s3cret"})
	f := uploadtest.File{Name: "guarded.bin", Seed: 1, Size: 10}
	req := s.request(t, http.MethodPut, "/files/"+f.Name, f.Reader(), f.Size)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, body := s.do(t, req)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	s.waitServed(t)

	for _, auth := range []string{"", "Bearer wrong"} {
		req := s.request(t, http.MethodDelete, "/files/"+f.Name, nil, 0)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, body := s.do(t, req)
		requireError(t, resp, body, http.StatusUnauthorized, "unauthorized")
		s.waitServed(t)
		uploadtest.RequireFile(t, f, s.dir+"/"+f.Name)
	}
	// Auth comes first: a missing file is not told apart without it.
	resp, body = s.do(t, s.request(t, http.MethodDelete, "/files/missing.bin", nil, 0))
	requireError(t, resp, body, http.StatusUnauthorized, "unauthorized")
	s.waitServed(t)

	req = s.request(t, http.MethodDelete, "/files/"+f.Name, nil, 0)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, body = s.do(t, req)
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	s.waitServed(t)
	assert.NoFileExists(t, s.dir+"/"+f.Name)
}

// A download that began before the delete gets every byte it began with.
func TestDeleteDuringDownload(t *testing.T) {
	s := newServer(t, options{})
	f := uploadtest.File{Name: "big.bin", Seed: 9, Size: 32 << 20}
	resp, body := s.send(t, uploadtest.Case{Mode: uploadtest.RawLength, Files: []uploadtest.File{f}})
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	s.waitServed(t)

	get, err := s.client.Do(s.request(t, http.MethodGet, "/files/"+f.Name, nil, 0))
	require.NoError(t, err)
	defer get.Body.Close()
	require.Equal(t, http.StatusOK, get.StatusCode)
	head := make([]byte, 1<<20)
	_, err = io.ReadFull(get.Body, head)
	require.NoError(t, err)

	resp, body = s.do(t, s.request(t, http.MethodDelete, "/files/"+f.Name, nil, 0))
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	s.waitServed(t)
	resp, body = s.do(t, s.request(t, http.MethodGet, "/files/"+f.Name, nil, 0))
	requireError(t, resp, body, http.StatusNotFound, "not_found")
	s.waitServed(t)

	rest, err := io.ReadAll(get.Body)
	require.NoError(t, err)
	assert.Equal(t, f.Bytes(), append(head, rest...), "the download was cut or changed")
	require.Equal(t, http.StatusOK, s.waitServed(t))
}
