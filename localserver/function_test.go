package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
	"spillway/wire"
)

func TestFunctionModeRefusesToStartWithout(t *testing.T) {
	bootstrap := filepath.Join(t.TempDir(), "bootstrap")
	require.NoError(t, os.WriteFile(bootstrap, []byte("#!/bin/sh\n"), 0o755))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--function", bootstrap}, "needs --bucket"},
		{[]string{"--function", bootstrap + ".missing", "--bucket", "b"}, "no such file"},
		{[]string{"--function", bootstrap, "--bucket", "b", "--rie", "no-such-aws-lambda-rie"}, "make emulate"},
	} {
		args := append([]string{"--addr", "127.0.0.1:0", "--spool-dir", t.TempDir()}, c.args...)
		err := run(t.Context(), args, env(nil), io.Discard, nil)
		require.ErrorContains(t, err, c.want, "%q", c.args)
	}
}

// TestFunctionURLEndToEnd serves the real upload function through
// --function: the real bootstrap under the real emulator, storing into a
// real S3 gateway, with every body going through the event a deployed
// Function URL would send.
func TestFunctionURLEndToEnd(t *testing.T) {
	bootstrap, rie, gw := testservers.FunctionParts(t)
	r := start(t, "--function", bootstrap, "--rie", rie, "--bucket", gw.Bucket)
	emulator := testservers.PidFD(t, testservers.RIEPid(t, r.logs.String()))
	base := "http://" + r.Addr
	client := &http.Client{Transport: &http.Transport{}, Timeout: 60 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	send := func(req *http.Request) (*http.Response, []byte) {
		t.Helper()
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, body
	}
	requireCreated := func(resp *http.Response, body []byte, files ...uploadtest.File) {
		t.Helper()
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
		var got wire.UploadResponse
		require.NoError(t, json.Unmarshal(body, &got), string(body))
		require.Len(t, got.Files, len(files))
		for i, f := range files {
			assert.Equal(t, filepath.Base(f.Name), filepath.Base(got.Files[i].Name))
			assert.Equal(t, f.Size, got.Files[i].Size)
			assert.Equal(t, f.SHA256(), got.Files[i].SHA256)
			uploadtest.RequireFile(t, f, gw.ObjectPath(f.Name))
		}
		// The function's request ID is the Function URL's.
		assert.Equal(t, resp.Header.Get("X-Amzn-Requestid"), resp.Header.Get("X-Request-Id"))
		uploadtest.RequireEmptyDir(t, r.spoolDir)
	}

	for _, tc := range []struct {
		name, contentType string
		f                 uploadtest.File
	}{
		{"binary PUT", "application/octet-stream", uploadtest.File{Name: "bin/x.bin", Seed: 1, Size: 1 << 20}},
		{"text PUT", "text/plain; charset=utf-8", uploadtest.File{Name: "notes.txt", Seed: 2, Size: 100 << 10, Text: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPut, base+"/files/"+tc.f.Name, tc.f.Reader())
			require.NoError(t, err)
			req.ContentLength = tc.f.Size
			req.Header.Set("Content-Type", tc.contentType)
			resp, body := send(req)
			requireCreated(resp, body, tc.f)
		})
	}

	t.Run("multipart POST", func(t *testing.T) {
		files := []uploadtest.File{{Name: "m1.bin", Seed: 3, Size: 10 << 10}, {Name: "m2.bin", Seed: 4, Size: 2<<20 + 1}}
		ct, mp, n := uploadtest.Multipart(files)
		req, err := http.NewRequest(http.MethodPost, base+"/files", mp)
		require.NoError(t, err)
		req.ContentLength = n
		req.Header.Set("Content-Type", ct)
		resp, body := send(req)
		requireCreated(resp, body, files...)
	})

	t.Run("over the limit", func(t *testing.T) {
		// 5 MB of binary is 6.7 MB of base64: no event can carry it.
		f := uploadtest.File{Name: "too-big.bin", Seed: 5, Size: 5_000_000}
		for _, chunked := range []bool{false, true} {
			var body io.Reader = f.Reader()
			if chunked {
				body = io.MultiReader(body)
			}
			req, err := http.NewRequest(http.MethodPut, base+"/files/"+f.Name, body)
			require.NoError(t, err)
			if !chunked {
				req.ContentLength = f.Size
			}
			resp, got := send(req)
			assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
			var refused struct {
				Error struct {
					Code string `json:"code"`
				} `json:"error"`
			}
			require.NoError(t, json.Unmarshal(got, &refused), "%s", got)
			assert.Equal(t, "too_large", refused.Error.Code)
			assert.NoFileExists(t, gw.ObjectPath(f.Name))
			uploadtest.RequireEmptyDir(t, r.spoolDir)
		}
	})

	t.Run("list", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, base+"/files", nil)
		require.NoError(t, err)
		resp, body := send(req)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var list wire.ListResponse
		require.NoError(t, json.Unmarshal(body, &list))
		var names []string
		for _, f := range list.Files {
			names = append(names, f.Name)
		}
		assert.ElementsMatch(t, []string{"bin/x.bin", "notes.txt", "m1.bin", "m2.bin"}, names)
	})

	r.Wait(t)
	testservers.WaitGone(t, emulator) // stopped with the server
	logs := r.logs.String()
	assert.Contains(t, logs, "config.function="+bootstrap)
	assert.Contains(t, logs, `msg=request method=PUT path=/files/bin/x.bin status=201`)
	assert.Contains(t, logs, `"msg":"request"`, "the function's own log lines come through")
	assert.Contains(t, logs, "spool_files_open=0")
}

// TestFunctionDiesWithTheServer: a server killed with SIGKILL cannot stop
// the emulator itself; the kernel does (the parent-death signal), and the
// function follows.
func TestFunctionDiesWithTheServer(t *testing.T) {
	bootstrap, rie, gw := testservers.FunctionParts(t)
	bin := buildServer(t)
	p := startProc(t, bin, filepath.Join(t.TempDir(), "uploads"), t.TempDir(),
		"--function", bootstrap, "--rie", rie, "--bucket", gw.Bucket)
	riePid := testservers.RIEPid(t, p.Log.String())

	// The emulator starts the function at the first invocation.
	f := uploadtest.File{Name: "before-kill.bin", Seed: 6, Size: 1000}
	status, body := putFile(t, p.URL, f)
	require.Equal(t, http.StatusCreated, status, string(body))
	children := childrenOf(t, riePid)
	require.NotEmpty(t, children, "the function runs under the emulator")

	emulator := testservers.PidFD(t, riePid)
	var functions []int
	for _, c := range children {
		functions = append(functions, testservers.PidFD(t, c))
	}
	p.kill9(t)
	testservers.WaitGone(t, emulator)
	for _, fd := range functions {
		testservers.WaitGone(t, fd)
	}
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(t *testing.T, pid int) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	require.NoError(t, err)
	var kids []int
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		rest := b[bytes.LastIndexByte(b, ')')+1:]
		fields := strings.Fields(string(rest))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			child, _ := strconv.Atoi(filepath.Base(filepath.Dir(s)))
			kids = append(kids, child)
		}
	}
	return kids
}
