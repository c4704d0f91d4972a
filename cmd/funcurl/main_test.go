package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
	"spillway/wire"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestRefusesToStartWithout(t *testing.T) {
	bootstrap := filepath.Join(t.TempDir(), "bootstrap")
	require.NoError(t, os.WriteFile(bootstrap, []byte("#!/bin/sh\n"), 0o755))
	spoolDir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "--function"},
		{[]string{"--function", bootstrap}, "needs --bucket"},
		{[]string{"--function", bootstrap + ".missing", "--bucket", "b"}, "no such file"},
		{[]string{"--function", bootstrap, "--bucket", "b", "--rie", "no-such-aws-lambda-rie"}, "make emulate"},
		// The local server's own settings are not the emulator's.
		{[]string{"--function", bootstrap, "--bucket", "b", "--overwrite"}, "overwrite"},
	} {
		args := append([]string{"--addr", "127.0.0.1:0", "--spool-dir", spoolDir}, c.args...)
		err := run(t.Context(), args, env(nil), io.Discard, nil)
		require.ErrorContains(t, err, c.want, "%q", c.args)
	}
	uploadtest.RequireEmptyDir(t, spoolDir)
}

// The emulator builds no store, API handler, page or metrics: the function
// has its own, so the binary does not even link them.
func TestLinksNoStoreNorMetrics(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	require.NoError(t, err)
	deps := strings.Fields(string(out))
	for _, dep := range deps {
		// A banned package, or one below it.
		for _, banned := range []string{"spillway/api", "spillway/web", "spillway/store", "spillway/metrics", "github.com/prometheus", "github.com/aws/aws-sdk-go-v2/service/s3"} {
			assert.False(t, dep == banned || strings.HasPrefix(dep, banned+"/"), "cmd/funcurl links %s", dep)
		}
	}
	assert.Contains(t, deps, "spillway/funcurl")
	assert.Contains(t, deps, "spillway/internal/serve")
}

// TestServesTheFunction runs the real upload function under the real
// emulator, storing into a real S3 gateway, through this command.
func TestServesTheFunction(t *testing.T) {
	bootstrap, rie, gw := testservers.FunctionParts(t)

	spoolDir := t.TempDir()
	logs := &uploadtest.SyncBuffer{}
	args := []string{"--addr", "127.0.0.1:0", "--spool-dir", spoolDir, "--function", bootstrap, "--rie", rie, "--bucket", gw.Bucket}
	r := testservers.RunInProcess(t, logs, func(ctx context.Context, ready chan<- string) error {
		return run(ctx, args, env(nil), logs, ready)
	})
	emulator := testservers.PidFD(t, testservers.RIEPid(t, logs.String()))

	f := uploadtest.File{Name: "via-funcurl.bin", Seed: 9, Size: 3 << 20}
	req, err := http.NewRequest(http.MethodPut, "http://"+r.Addr+"/files/"+f.Name, f.Reader())
	require.NoError(t, err)
	req.ContentLength = f.Size
	client := &http.Client{Transport: &http.Transport{}, Timeout: 60 * time.Second}
	resp, err := client.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	var got wire.UploadResponse
	require.NoError(t, json.Unmarshal(body, &got), string(body))
	require.Len(t, got.Files, 1)
	assert.Equal(t, f.SHA256(), got.Files[0].SHA256)
	assert.Equal(t, resp.Header.Get("X-Amzn-Requestid"), resp.Header.Get("X-Request-Id"), "the function answered")
	uploadtest.RequireFile(t, f, gw.ObjectPath(f.Name))
	client.CloseIdleConnections()

	r.Wait(t)
	testservers.WaitGone(t, emulator)
	uploadtest.RequireEmptyDir(t, spoolDir)
	out2 := logs.String()
	assert.Contains(t, out2, `msg="spillway local server listening"`)
	assert.Contains(t, out2, "config.function="+bootstrap)
	assert.NotContains(t, out2, "config.overwrite", "only the emulator's settings")
	assert.Contains(t, out2, `"msg":"request"`, "the function's own log lines come through")
	assert.Contains(t, out2, "spool_files_open=0")
}
