package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/wire"
)

// The function under the Function URL emulator, storing to S3, lists each
// file's expiry from its Last-Modified and SPILLWAY_RETENTION, which the
// emulator hands the function; S3's lifecycle rule, not the function,
// removes the files.
func TestRetentionListingFunctionURL(t *testing.T) {
	gw := testservers.StartS3(t)
	rie := testservers.Tool(t, testservers.RIE)
	env := append(testservers.CleanEnv(), gw.Env()...)
	srv := startServer(t, env, "--function", bootstrapBin(t), "--rie", rie, "--bucket", gw.Bucket,
		"--spool-dir", t.TempDir(), "--token", token, "--retention", "30d")
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	call := func(method, path, body string) (int, string) {
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}

	for _, name := range []string{"a/old.txt", "new.txt"} {
		status, body := call(http.MethodPut, "/files/"+name, name)
		require.Equal(t, http.StatusCreated, status, body)
	}
	// The gateway keeps each object as a file, and its mtime is the
	// object's Last-Modified.
	old := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	require.NoError(t, os.Chtimes(gw.ObjectPath("a/old.txt"), old, old))

	status, body := call(http.MethodGet, "/files", "")
	require.Equal(t, http.StatusOK, status, body)
	var page wire.ListResponse
	require.NoError(t, json.Unmarshal([]byte(body), &page), body)
	require.Len(t, page.Files, 2, body)
	assert.Equal(t, "a/old.txt", page.Files[0].Name)
	assert.Equal(t, old, page.Files[0].Modified)
	assert.Equal(t, time.Date(2026, 2, 1, 3, 4, 5, 0, time.UTC), page.Files[0].Expires, "Last-Modified plus 30 days: %s", body)
	assert.WithinDuration(t, time.Now(), page.Files[1].Modified, time.Hour)
	assert.Equal(t, 30*24*time.Hour, page.Files[1].Expires.Sub(page.Files[1].Modified))
	assert.Contains(t, body, `"expires":"2026-02-01T03:04:05Z"`, "RFC 3339, UTC")
}
