package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

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
	const budget = 64 << 20
	const size = 1536 << 10 // 1.5 MiB: under the 2 MiB threshold
	const clients = 64
	srv := startWithBudget(t, budget)

	// Every client gets its "100 Continue" (so its handler has reserved
	// memory or opened a spool file) and sends all but its last byte before
	// any of them finishes: all 64 bodies are held at once.
	spools := make([]wire.Spool, clients)
	allAtOnce(clients, func(i int, hold func()) {
		f := uploadtest.File{Seed: uint64(i), Size: size}
		spools[i] = putHeld(t, srv.Addr, fmt.Sprintf("load-%02d.bin", i), f, size-1, true, hold)
	})

	counts := map[wire.Spool]int{}
	for _, s := range spools {
		counts[s]++
	}
	assertPeakRSS(t, srv, budget+serve.MemoryOverhead, fmt.Sprintf("64 concurrent 1.5 MiB uploads, 64 MiB budget: spool %v", counts))
	assert.Positive(t, counts[wire.SpoolMemory])
	assert.Positive(t, counts[wire.SpoolDisk], "the budget must send some small bodies to disk")
	srv.stop(t)
}

// TestWorkingBuffersStayWithinBudget holds 64 uploads of 10 MiB open at
// once, all going to disk, with an 8 MiB budget: their working buffers
// (reads, writes, hashing) count against the budget, and past half of it
// each works with one small buffer, so the server's peak RSS stays within
// the budget and a fixed overhead. Before, each held four 256 KiB buffers
// outside the budget: about 70 MiB.
func TestWorkingBuffersStayWithinBudget(t *testing.T) {
	const (
		budget  = 8 << 20
		size    = 10 << 20
		held    = 6 << 20 // sent before any upload finishes
		clients = 64
		// The binary and the runtime at start (about 14 MiB here), a
		// small buffer and a connection per upload.
		overhead = 20 << 20
	)
	srv := startWithBudget(t, budget)
	allAtOnce(clients, func(i int, hold func()) {
		f := uploadtest.File{Seed: uint64(i), Size: size}
		if spool := putHeld(t, srv.Addr, fmt.Sprintf("big-%02d.bin", i), f, held, false, hold); spool != "" {
			assert.Equal(t, wire.SpoolDisk, spool)
		}
	})
	assertPeakRSS(t, srv, budget+overhead, fmt.Sprintf("%d concurrent 10 MiB uploads, 8 MiB budget", clients))
	srv.stop(t)
}

// startWithBudget starts the binary with a memory budget, and without
// fsync, which the memory tests do not measure.
func startWithBudget(t *testing.T, budget int) *proc {
	t.Helper()
	return startBinary(t, "--memory-budget", fmt.Sprint(budget), "--fsync=false")
}

// allAtOnce runs client for each of n clients in a goroutine of its own
// and returns once every one has returned. hold, which a client calls
// once it has sent what it must keep open, returns only when every client
// has called it or returned: so that the server holds all of it at once.
func allAtOnce(n int, client func(i int, hold func())) {
	var ready, done sync.WaitGroup
	release := make(chan struct{})
	for i := range n {
		ready.Add(1)
		done.Go(func() {
			readyOnce := sync.OnceFunc(ready.Done)
			defer readyOnce()
			client(i, func() {
				readyOnce()
				<-release
			})
		})
	}
	ready.Wait()
	close(release)
	done.Wait()
}

// putHeld PUTs f as name over a connection of its own to addr, sending
// the first held bytes, then calling hold before it sends the rest. With
// expectContinue it waits for "100 Continue" before the body. It asserts
// the upload was stored whole and returns its spool, or "" when it was
// not; it may run in a goroutine other than the test's.
func putHeld(t *testing.T, addr, name string, f uploadtest.File, held int, expectContinue bool, hold func()) wire.Spool {
	conn, err := net.Dial("tcp", addr)
	if !assert.NoError(t, err) {
		return ""
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	if expectContinue {
		fmt.Fprintf(conn, "PUT /files/%s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", name, f.Size)
		line, err := br.ReadString('\n')
		if !assert.NoError(t, err) || !assert.Equal(t, "HTTP/1.1 100 Continue\r\n", line) {
			return ""
		}
		br.ReadString('\n')
	} else {
		fmt.Fprintf(conn, "PUT /files/%s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", name, f.Size)
	}
	body := f.Bytes()
	if _, err := conn.Write(body[:held]); !assert.NoError(t, err) {
		return ""
	}
	hold()
	if _, err := conn.Write(body[held:]); !assert.NoError(t, err) {
		return ""
	}
	resp, err := http.ReadResponse(br, nil)
	if !assert.NoError(t, err) {
		return ""
	}
	defer resp.Body.Close()
	var got wire.UploadResponse
	raw, _ := io.ReadAll(resp.Body)
	if !assert.Equal(t, http.StatusCreated, resp.StatusCode, string(raw)) || !assert.NoError(t, json.Unmarshal(raw, &got)) {
		return ""
	}
	assert.Equal(t, f.SHA256(), got.Files[0].SHA256)
	return got.Files[0].Spool
}

// assertPeakRSS asserts that the server's peak RSS so far is at most
// limit, logging it after what the test did.
func assertPeakRSS(t *testing.T, srv *proc, limit int64, what string) {
	t.Helper()
	hwm := testservers.PeakRSS(t, srv.Pid())
	t.Logf("%s: peak RSS %.1f MiB (limit %.1f MiB)", what, float64(hwm)/(1<<20), float64(limit)/(1<<20))
	assert.LessOrEqual(t, hwm, limit, "peak RSS over budget + overhead")
}
