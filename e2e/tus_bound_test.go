package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
)

// At --max-open-uploads, tus-js-client (the real one, with retries on)
// is refused with 429 too_many_uploads and gives up at once, rather than
// sending the creation again after each of its retry delays; once the
// open upload is terminated, the same run succeeds.
func TestTusJSClientAtTheOpenUploadBound(t *testing.T) {
	modules := testservers.NodeModules(t, tusJSClient)
	dir := filepath.Join(t.TempDir(), "uploads")
	srv := startServer(t, testservers.CleanEnv(), "--directory", dir, "--spool-dir", t.TempDir(),
		"--token", token, "--max-open-uploads", "1")

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/tus/", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", "10")
	req.Header.Set("Upload-Metadata", "filename b3Blbi5iaW4=") // open.bin
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	open := resp.Header.Get("Location")

	f := uploadtest.File{Name: "small.bin", Size: 1000, Seed: 3}
	src := filepath.Join(t.TempDir(), "small.bin")
	f.WriteFile(t, src)
	env := []string{
		"TUS_MODULES=" + modules,
		"TUS_ENDPOINT=" + srv.URL + "/tus/",
		"TUS_FILE=" + src,
		"TUS_NAME=" + f.Name,
		"TUS_TOKEN=" + token,
		"TUS_URLS=" + filepath.Join(t.TempDir(), "tus-urls.json"),
		"TUS_CHUNK=" + strconv.Itoa(1<<20),
	}
	events, err := runTusJS(t, env...)
	require.Error(t, err, "the client was to give up")
	var posts, refused int
	for _, e := range events {
		switch {
		case e.Ev == "req" && e.Method == methodPOST:
			posts++
		case e.Ev == "res" && e.Status == http.StatusTooManyRequests:
			refused++
		}
	}
	assert.Equal(t, 1, posts, "tus-js-client sent the refused creation again")
	assert.Equal(t, 1, refused)
	require.Equal(t, "error", events[len(events)-1].Ev)
	assert.Contains(t, events[len(events)-1].Message, "too_many_uploads")

	req, err = http.NewRequestWithContext(t.Context(), http.MethodDelete, srv.URL+open, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Tus-Resumable", "1.0.0")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	events, err = runTusJS(t, env...)
	require.NoError(t, err)
	assert.Equal(t, "done", events[len(events)-1].Ev)
	_, err = os.Stat(filepath.Join(dir, f.Name))
	require.NoError(t, err)
}
