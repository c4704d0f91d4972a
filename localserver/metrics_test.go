package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
)

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func TestMetricsMoveWithUploads(t *testing.T) {
	r := start(t, "--token", "t0k")
	status, body := get(t, "http://"+r.Addr+"/metrics", "")
	require.Equal(t, http.StatusUnauthorized, status, "the metrics follow the token rule")
	assert.Contains(t, body, `"unauthorized"`)

	f := uploadtest.File{Name: "m.bin", Seed: 1, Size: 3 << 20}
	req, err := http.NewRequest(http.MethodPut, "http://"+r.Addr+"/files/m.bin", f.Reader())
	require.NoError(t, err)
	req.ContentLength = f.Size
	req.Header.Set("Authorization", "Bearer t0k")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	status, body = get(t, "http://"+r.Addr+"/metrics", "t0k")
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `spillway_uploads_total{result="created",spool="disk"} 1`)
	assert.Contains(t, body, "spillway_stored_bytes_total 3.145728e+06")
	assert.Contains(t, body, "spillway_uploads_in_flight 0")
	assert.Contains(t, body, "spillway_spool_files_open 0")
	r.Wait(t)
}

func TestMetricsPublic(t *testing.T) {
	r := start(t, "--token", "t0k", "--metrics-public")
	status, body := get(t, "http://"+r.Addr+"/metrics", "")
	require.Equal(t, http.StatusOK, status)
	assert.True(t, strings.Contains(body, "spillway_orphans_swept_total 0"))
	r.Wait(t)
}
