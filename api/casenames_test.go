package api_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/store/dirstore"
)

// TestCaseTwinsAreConflicts: a name that differs from a stored one only in
// case is 409 exists, before the body, raw and multipart (where a request
// holding both twins stores neither), unless the store keeps names case
// sensitive.
func TestCaseTwinsAreConflicts(t *testing.T) {
	s := newServer(t, options{})
	resp, body := s.do(t, s.request(t, http.MethodPut, "/files/Readme.TXT", strings.NewReader("one"), 3))
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	s.waitServed(t)

	resp, body = s.do(t, s.request(t, http.MethodPut, "/files/readme.txt", strings.NewReader("two"), 3))
	requireError(t, resp, body, http.StatusConflict, "exists")
	s.waitServed(t)
	s.requireLogged(t, resp, "differs only in case")
	assert.Contains(t, s.logs.String(), `"bytes":0`, "refused before the body")

	mp, _, _ := multipartBody(uploadtest.File{Name: "new.txt", Size: 5}, uploadtest.File{Name: "NEW.TXT", Size: 5})
	req := s.request(t, http.MethodPost, "/files", bytes.NewReader(mp), int64(len(mp)))
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+uploadtest.Boundary)
	resp, body = s.do(t, req)
	requireError(t, resp, body, http.StatusConflict, "exists")
	s.waitServed(t)
	entries, err := os.ReadDir(s.dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{"Readme.TXT"}, names)

	cs := newServer(t, options{store: dirstore.Options{CaseSensitiveNames: true}})
	for _, name := range []string{"Readme.TXT", "readme.txt"} {
		resp, body := cs.do(t, cs.request(t, http.MethodPut, "/files/"+name, strings.NewReader(name), int64(len(name))))
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
		cs.waitServed(t)
		got, err := os.ReadFile(filepath.Join(cs.dir, name))
		require.NoError(t, err)
		assert.Equal(t, name, string(got))
	}
}
