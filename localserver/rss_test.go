package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
	"spillway/wire"
)

// TestLargeUploadsKeepMemoryFlat runs the real binary, as `make run` does,
// and uploads 1 GiB raw and 1 GiB multipart. Both must be stored
// byte-identical while the server's peak RSS (VmHWM) stays under 32 MiB.
func TestLargeUploadsKeepMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 2 GiB; skipped in -short mode")
	}
	const size = 1 << 30
	const maxRSS = 32 << 20
	srv := startBinary(t)

	raw := uploadtest.File{Name: "raw.bin", Seed: 11, Size: size}
	req, err := http.NewRequest(http.MethodPut, srv.URL+"/files/raw.bin", raw.Reader())
	require.NoError(t, err)
	req.ContentLength = size
	requireStored(t, req, raw, filepath.Join(srv.dir, raw.Name))

	mp := uploadtest.File{Name: "multipart.bin", Seed: 12, Size: size}
	ct, body, n := uploadtest.Multipart([]uploadtest.File{mp})
	req, err = http.NewRequest(http.MethodPost, srv.URL+"/files", body)
	require.NoError(t, err)
	req.ContentLength = n
	req.Header.Set("Content-Type", ct)
	requireStored(t, req, mp, filepath.Join(srv.dir, mp.Name))

	hwm := testservers.PeakRSS(t, srv.Pid())
	t.Logf("server peak RSS (VmHWM) after 1 GiB raw + 1 GiB multipart: %.1f MiB", float64(hwm)/(1<<20))
	assert.Less(t, hwm, int64(maxRSS), "peak RSS")
	srv.stop(t)
}

func requireStored(t *testing.T, req *http.Request, f uploadtest.File, path string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	var got wire.UploadResponse
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	require.Len(t, got.Files, 1)
	assert.Equal(t, f.Size, got.Files[0].Size)
	assert.Equal(t, wire.SpoolDisk, got.Files[0].Spool)
	assert.Equal(t, f.SHA256(), got.Files[0].SHA256)
	uploadtest.RequireFile(t, f, path)
}
