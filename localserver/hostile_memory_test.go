package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/serve"
	"spillway/internal/uploadtest"
	"spillway/wire"
)

// TestLargePartHeadersStayWithinBudget sends 64 concurrent multipart
// requests, each with a 10 MiB part header, to the real binary with an
// 8 MiB memory budget. Part headers are held in memory while they are
// parsed, so they must be refused long before 10 MiB: every request is
// 400 bad_multipart, nothing is stored, and the peak RSS stays within the
// budget plus the fixed overhead.
func TestLargePartHeadersStayWithinBudget(t *testing.T) {
	const budget = 8 << 20
	const clients = 64
	const headerSize = 10 << 20
	srv := startWithBudget(t, budget)

	// Each client sends all but the last KiB of its header before any of
	// them goes on, so that every header is in the server at once.
	allAtOnce(clients, func(i int, hold func()) {
		partHead := fmt.Sprintf("--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"h-%02d.txt\"\r\nX-Big: ", i)
		partTail := "\r\n\r\ndata\r\n--b--\r\n"
		length := len(partHead) + headerSize + len(partTail)
		conn, err := net.Dial("tcp", srv.Addr)
		if !assert.NoError(t, err) {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(2 * time.Minute))
		resps := make(chan *http.Response, 1)
		go func() {
			defer close(resps)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if assert.NoError(t, err) {
				resps <- resp
			}
		}()
		fmt.Fprintf(conn, "POST /files HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: %d\r\n\r\n%s", length, partHead)
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		sent, werr := 0, error(nil)
		for sent < headerSize-1024 && werr == nil {
			var n int
			n, werr = conn.Write(chunk[:min(len(chunk), headerSize-1024-sent)])
			sent += n
		}
		hold()
		if werr == nil {
			// The server may answer and close before the end.
			conn.Write(chunk[:headerSize-sent])
			io.WriteString(conn, partTail)
		}
		resp, ok := <-resps
		if !assert.True(t, ok, "no response") {
			return
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		if assert.Equal(t, http.StatusBadRequest, resp.StatusCode, string(raw)) && assert.NoError(t, json.Unmarshal(raw, &e)) {
			assert.Equal(t, "bad_multipart", e.Error.Code)
		}
	})

	assertPeakRSS(t, srv, budget+serve.MemoryOverhead, fmt.Sprintf("%d concurrent multipart requests with a 10 MiB part header, 8 MiB budget", clients))
	uploadtest.RequireEmptyDir(t, srv.dir)
	srv.stop(t)
}

// TestConcurrentListingsStayWithinBudget lists a folder of 30,000 files
// with 32 concurrent clients, several pages each, against the real binary
// with an 8 MiB memory budget. Each answer is a full page or 503 busy with
// Retry-After, and the peak RSS stays within the budget plus the fixed
// overhead.
func TestConcurrentListingsStayWithinBudget(t *testing.T) {
	const budget = 8 << 20
	const files = 30000
	const clients = 32
	const rounds = 4
	srv := startWithBudget(t, budget)
	name := func(i int) string { return fmt.Sprintf("%s-%05d.txt", strings.Repeat("n", 64), i) }
	for i := range files {
		require.NoError(t, os.WriteFile(filepath.Join(srv.dir, name(i)), nil, 0o600))
	}

	var mu sync.Mutex
	statuses := map[int]int{}
	allAtOnce(clients, func(c int, hold func()) {
		client := &http.Client{Transport: &http.Transport{}}
		defer client.CloseIdleConnections()
		hold()
		for r := range rounds {
			// Pages from different places in the folder.
			cursor := base64.RawURLEncoding.EncodeToString([]byte(name((c*rounds + r) * 200 % files)))
			resp, err := client.Get(srv.URL + "/files?cursor=" + cursor)
			if !assert.NoError(t, err) {
				return
			}
			var page wire.ListResponse
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.NoError(t, err)
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
			switch resp.StatusCode {
			case http.StatusOK:
				if assert.NoError(t, json.Unmarshal(raw, &page)) && assert.NotEmpty(t, page.Files) {
					assert.Equal(t, name((c*rounds+r)*200%files+1), page.Files[0].Name)
					assert.Len(t, page.Files, min(1000, files-1-(c*rounds+r)*200%files))
				}
			case http.StatusServiceUnavailable:
				assert.Equal(t, "1", resp.Header.Get("Retry-After"))
				assert.Contains(t, string(raw), `"code":"busy"`)
			default:
				assert.Fail(t, "unexpected status", "%d: %s", resp.StatusCode, raw)
			}
		}
	})

	assertPeakRSS(t, srv, budget+serve.MemoryOverhead, fmt.Sprintf("%d clients x %d pages of a folder of %d files, 8 MiB budget: statuses %v", clients, rounds, files, statuses))
	assert.Positive(t, statuses[http.StatusOK])
	srv.stop(t)
}
