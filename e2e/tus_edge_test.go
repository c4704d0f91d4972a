package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
)

// The tus protocol's edge cases against the real binaries, on both
// entrypoints: each is answered as the protocol says, the upload goes on
// from where the server says it is, the file stored is the file, and
// nothing is left behind.

func TestTusEdgesDirectoryStore(t *testing.T) { caseTusEdges(t, startDirTarget(t)) }

func TestTusEdgesFunctionURL(t *testing.T) { caseTusEdges(t, startFunctionTarget(t)) }

const tusChunk = 4 << 20

// tusReq sends one tus request with the token.
func tusReq(t *testing.T, tg *target, method, path string, body io.Reader, length int64, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, tg.srv.URL+path, body)
	require.NoError(t, err)
	req.ContentLength = length
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Tus-Resumable", "1.0.0")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := tg.api.hc.Do(req)
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func tusPatch(t *testing.T, tg *target, path string, offset int64, b []byte, hdr ...string) *http.Response {
	t.Helper()
	hdr = append([]string{"Content-Type", "application/offset+octet-stream", "Upload-Offset", strconv.FormatInt(offset, 10)}, hdr...)
	return tusReq(t, tg, http.MethodPatch, path, bytes.NewReader(b), int64(len(b)), hdr...)
}

func tusHeadOffset(t *testing.T, tg *target, path string) int64 {
	t.Helper()
	resp := tusReq(t, tg, http.MethodHead, path, nil, 0)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	n, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	require.NoError(t, err)
	return n
}

// restart kills the server (the Function URL emulator, with the function
// under it) and starts it again on the same storage: a gateway stopped.
func (tg *target) restart(t *testing.T) {
	t.Helper()
	tg.srv.Kill()
	if tg.kind == "dir" {
		tg.srv = startServer(t, testservers.CleanEnv(), "--directory", tg.dir, "--spool-dir", tg.spoolDir,
			"--token", token, "--upload-secret", uploadSecret)
	} else {
		env := append(testservers.CleanEnv(), tg.gw.Env()...)
		tg.srv = startServer(t, env, "--function", tg.bootstrap, "--rie", testservers.Tool(t, testservers.RIE),
			"--bucket", tg.gw.Bucket, "--spool-dir", tg.spoolDir, "--token", token)
	}
	tg.api = newAPIClient(t, tg.srv.URL, token)
}

func caseTusEdges(t *testing.T, tg *target) {
	const size = 3*tusChunk + 12345
	const name = "edges/file.bin"
	f := uploadtest.File{Name: name, Size: size, Seed: 460}
	data := f.Bytes()
	meta := "filename " + base64.StdEncoding.EncodeToString([]byte(name))
	resp := tusReq(t, tg, http.MethodPost, "/tus/", nil, 0, "Upload-Length", strconv.Itoa(size), "Upload-Metadata", meta)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	loc := resp.Header.Get("Location")
	require.NotEmpty(t, loc)

	resp = tusPatch(t, tg, loc, 0, data[:tusChunk])
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	// A PATCH at the wrong offset.
	resp = tusPatch(t, tg, loc, 0, data[:tusChunk])
	assert.Equal(t, http.StatusConflict, resp.StatusCode)
	assert.Equal(t, int64(tusChunk), tusHeadOffset(t, tg, loc))

	// A chunk whose Upload-Checksum is wrong: 460, and nothing of it kept.
	other := sha256.Sum256(data[:10])
	resp = tusPatch(t, tg, loc, tusChunk, data[tusChunk:2*tusChunk], "Upload-Checksum", "sha256 "+base64.StdEncoding.EncodeToString(other[:]))
	assert.Equal(t, 460, resp.StatusCode)
	assert.Equal(t, int64(tusChunk), tusHeadOffset(t, tg, loc))
	right := sha256.Sum256(data[tusChunk : 2*tusChunk])
	resp = tusPatch(t, tg, loc, tusChunk, data[tusChunk:2*tusChunk], "Upload-Checksum", "sha256 "+base64.StdEncoding.EncodeToString(right[:]))
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	// Two clients PATCH the same offset at once: one chunk is appended,
	// the other is refused (423 while the first holds the upload, 409
	// once it has moved on).
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i := range statuses {
		wg.Go(func() {
			statuses[i] = tusPatch(t, tg, loc, 2*tusChunk, data[2*tusChunk:3*tusChunk]).StatusCode
		})
	}
	wg.Wait()
	t.Logf("two PATCHes at once: %v", statuses)
	assert.Contains(t, statuses, http.StatusNoContent)
	for _, st := range statuses {
		assert.Contains(t, []int{http.StatusNoContent, http.StatusConflict, http.StatusLocked}, st)
	}
	if statuses[0] != http.StatusNoContent || statuses[1] != http.StatusNoContent {
		assert.Equal(t, int64(3*tusChunk), tusHeadOffset(t, tg, loc))
	}
	offset := tusHeadOffset(t, tg, loc)
	require.Equal(t, int64(3*tusChunk), offset, "statuses %v", statuses)

	// The gateway stops mid-PATCH: the client has sent half its chunk.
	pr, pw := io.Pipe()
	patchDone := make(chan error, 1)
	go func() {
		req, err := http.NewRequest(http.MethodPatch, tg.srv.URL+loc, pr)
		if err != nil {
			patchDone <- err
			return
		}
		req.ContentLength = size - offset
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
		resp, err := tg.api.hc.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		patchDone <- err
	}()
	_, err := pw.Write(data[offset : offset+(size-offset)/2])
	require.NoError(t, err)
	tg.restart(t)
	pw.CloseWithError(io.ErrClosedPipe)
	select {
	case <-patchDone:
	case <-time.After(time.Minute):
		require.FailNow(t, "the PATCH cut off by the stopped gateway did not end")
	}
	// Whatever the server kept of the cut chunk, the client goes on from
	// the offset it reports, and the file is whole.
	offset = tusHeadOffset(t, tg, loc)
	require.GreaterOrEqual(t, offset, int64(3*tusChunk))
	require.Less(t, offset, int64(size))
	t.Logf("after the gateway stopped mid-PATCH the upload is at %d", offset)
	resp = tusPatch(t, tg, loc, offset, data[offset:])
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, f.SHA256(), resp.Header.Get("Spillway-Sha256"))

	got, n, err := uploadtest.HashFile(tg.storedPath(name))
	require.NoError(t, err)
	assert.Equal(t, int64(size), n)
	assert.Equal(t, f.SHA256(), got)

	// Termination leaves nothing behind.
	resp = tusReq(t, tg, http.MethodPost, "/tus/", nil, 0, "Upload-Length", "100", "Upload-Metadata", "filename "+base64.StdEncoding.EncodeToString([]byte("gone.bin")))
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	gone := resp.Header.Get("Location")
	resp = tusPatch(t, tg, gone, 0, data[:10])
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	resp = tusReq(t, tg, http.MethodDelete, gone, nil, 0)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	resp = tusReq(t, tg, http.MethodHead, gone, nil, 0)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	tg.finish(t, name)
}
