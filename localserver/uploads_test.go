package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/wire"
)

// The part URLs the local server hands out are signed with --upload-secret,
// and carry its own address.
func TestMultipartUploadWithUploadSecret(t *testing.T) {
	const secret = "a-secret-of-at-least-16-bytes"
	r := start(t, "--upload-secret", secret, "--token", "tok")
	base := "http://" + r.Addr
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	do := func(method, u string, body []byte, token bool) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, u, bytes.NewReader(body))
		require.NoError(t, err)
		if token {
			req.Header.Set("Authorization", "Bearer tok")
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, data
	}

	f := uploadtest.File{Name: "parts/one.bin", Seed: 2, Size: 1000}
	resp, body := do(http.MethodPost, base+"/uploads", fmt.Appendf(nil, `{"name":%q,"size":%d}`, f.Name, f.Size), true)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	var up wire.CreatedUpload
	require.NoError(t, json.Unmarshal(body, &up))
	require.Len(t, up.Parts, 1)

	u, err := url.Parse(up.Parts[0].URL)
	require.NoError(t, err)
	assert.Equal(t, base, u.Scheme+"://"+u.Host)
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "PUT\n%s\n1\n%s", up.ID, u.Query().Get("expires"))
	assert.Equal(t, hex.EncodeToString(mac.Sum(nil)), u.Query().Get("sig"), "signed with --upload-secret")

	resp, body = do(http.MethodPut, up.Parts[0].URL, f.Bytes(), false)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	resp, body = do(http.MethodPost, base+"/uploads/"+up.ID+"/complete",
		fmt.Appendf(nil, `{"parts":[{"n":1,"etag":%q}]}`, resp.Header.Get("ETag")), true)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	uploadtest.RequireFile(t, f, filepath.Join(r.dir, f.Name))

	client.CloseIdleConnections()
	r.Wait(t)
	logs := r.logs.String()
	assert.Contains(t, logs, "config.upload_secret=true")
	assert.NotContains(t, logs, "no --upload-secret")
	assert.Contains(t, logs, "method=POST path=/uploads/"+up.ID+"/complete status=201")
}

func TestRandomUploadSecretIsLogged(t *testing.T) {
	r := start(t)
	r.Wait(t)
	logs := r.logs.String()
	assert.Contains(t, logs, "config.upload_secret=false")
	assert.True(t, strings.Contains(logs, "no --upload-secret"), logs)
}
