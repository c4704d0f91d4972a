package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/serve"
	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
	"spillway/wire"
)

// TestMemoryBudgetHoldsUnderLoad sends 64 concurrent small uploads whose
// sum is half again the memory budget. Each is under the threshold, so each
// would stay in memory if it could; the budget must push the excess to disk
// and keep the server's peak RSS within budget plus a fixed overhead.
func TestMemoryBudgetHoldsUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	const budget = 64 << 20
	const size = 1536 << 10 // 1.5 MiB: under the 2 MiB threshold
	const clients = 64
	srv := startBinary(t, "--memory-budget", fmt.Sprint(budget), "--fsync=false")

	// Every client gets its "100 Continue" (so its handler has reserved
	// memory or opened a spool file) and sends all but its last byte before
	// any of them finishes: all 64 bodies are held at once.
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	var ready, done sync.WaitGroup
	release := make(chan struct{})
	spools := make([]wire.Spool, clients)
	for i := range clients {
		ready.Add(1)
		done.Go(func() {
			readyOnce := sync.OnceFunc(ready.Done)
			defer readyOnce()
			f := uploadtest.File{Seed: uint64(i), Size: size}
			conn, err := net.Dial("tcp", u.Host)
			if !assert.NoError(t, err) {
				return
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			fmt.Fprintf(conn, "PUT /files/load-%02d.bin HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", i, size)
			line, err := br.ReadString('\n')
			if !assert.NoError(t, err) || !assert.Equal(t, "HTTP/1.1 100 Continue\r\n", line) {
				return
			}
			br.ReadString('\n')
			body := f.Bytes()
			if _, err := conn.Write(body[:size-1]); !assert.NoError(t, err) {
				return
			}
			readyOnce()
			<-release
			if _, err := conn.Write(body[size-1:]); !assert.NoError(t, err) {
				return
			}
			resp, err := http.ReadResponse(br, nil)
			if !assert.NoError(t, err) {
				return
			}
			defer resp.Body.Close()
			var got wire.UploadResponse
			raw, _ := io.ReadAll(resp.Body)
			if assert.Equal(t, http.StatusCreated, resp.StatusCode, string(raw)) && assert.NoError(t, json.Unmarshal(raw, &got)) {
				assert.Equal(t, f.SHA256(), got.Files[0].SHA256)
				spools[i] = got.Files[0].Spool
			}
		})
	}
	ready.Wait()
	close(release)
	done.Wait()

	counts := map[wire.Spool]int{}
	for _, s := range spools {
		counts[s]++
	}
	hwm := testservers.PeakRSS(t, srv.Pid())
	t.Logf("64 concurrent 1.5 MiB uploads, 64 MiB budget: spool %v, peak RSS %.1f MiB", counts, float64(hwm)/(1<<20))
	assert.Positive(t, counts[wire.SpoolMemory])
	assert.Positive(t, counts[wire.SpoolDisk], "the budget must send some small bodies to disk")
	assert.LessOrEqual(t, hwm, int64(budget+serve.MemoryOverhead), "peak RSS over budget + overhead")
	srv.stop(t)
}

// TestWorkingBuffersStayWithinBudget holds 64 uploads of 10 MiB open at
// once, all going to disk, with an 8 MiB budget: their working buffers
// (reads, writes, hashing) count against the budget, and past half of it
// each works with one small buffer, so the server's peak RSS stays within
// the budget and a fixed overhead. Before, each held four 256 KiB buffers
// outside the budget: about 70 MiB.
func TestWorkingBuffersStayWithinBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	const (
		budget  = 8 << 20
		size    = 10 << 20
		held    = 6 << 20 // sent before any upload finishes
		clients = 64
		// The binary and the runtime at start (about 14 MiB here), a
		// small buffer and a connection per upload.
		overhead = 20 << 20
	)
	srv := startBinary(t, "--memory-budget", fmt.Sprint(budget), "--fsync=false")
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	var ready, done sync.WaitGroup
	release := make(chan struct{})
	for i := range clients {
		ready.Add(1)
		done.Go(func() {
			readyOnce := sync.OnceFunc(ready.Done)
			defer readyOnce()
			f := uploadtest.File{Seed: uint64(i), Size: size}
			conn, err := net.Dial("tcp", u.Host)
			if !assert.NoError(t, err) {
				return
			}
			defer conn.Close()
			fmt.Fprintf(conn, "PUT /files/big-%02d.bin HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", i, size)
			body := f.Bytes()
			if _, err := conn.Write(body[:held]); !assert.NoError(t, err) {
				return
			}
			readyOnce()
			<-release
			if _, err := conn.Write(body[held:]); !assert.NoError(t, err) {
				return
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if !assert.NoError(t, err) {
				return
			}
			defer resp.Body.Close()
			var got wire.UploadResponse
			raw, _ := io.ReadAll(resp.Body)
			if assert.Equal(t, http.StatusCreated, resp.StatusCode, string(raw)) && assert.NoError(t, json.Unmarshal(raw, &got)) {
				assert.Equal(t, f.SHA256(), got.Files[0].SHA256)
				assert.Equal(t, wire.SpoolDisk, got.Files[0].Spool)
			}
		})
	}
	ready.Wait()
	close(release)
	done.Wait()
	hwm := testservers.PeakRSS(t, srv.Pid())
	t.Logf("%d concurrent 10 MiB uploads, 8 MiB budget: peak RSS %.1f MiB (limit %.0f MiB)", clients, float64(hwm)/(1<<20), float64(budget+overhead)/(1<<20))
	assert.LessOrEqual(t, hwm, int64(budget+overhead), "peak RSS over budget + overhead")
	srv.stop(t)
}
