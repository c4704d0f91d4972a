package api_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/internal/formdata"
	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/store/dirstore"
)

// TestMultipartBuffersStayWithinBudget stops many multipart uploads in the
// middle of their file and checks that what they hold, the multipart
// reader's window included, stays within the memory budget and the small
// working buffers beyond it. A window outside the budget alone would be
// 256 KiB more per upload.
func TestMultipartBuffersStayWithinBudget(t *testing.T) {
	require.GreaterOrEqual(t, spool.SmallBufferSize, formdata.MinBufferSize, "a small working buffer can be a multipart reader's window")
	sp, h := budgetedHandler(t, false)

	bodies := make([][]byte, stalledUploads)
	types := make([]string, stalledUploads)
	for i := range stalledUploads {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		fw, err := w.CreateFormFile("file", "f"+strconv.Itoa(i)+".bin")
		require.NoError(t, err)
		_, err = fw.Write(bytes.Repeat([]byte{byte(i)}, stalledSize))
		require.NoError(t, err)
		require.NoError(t, w.Close())
		bodies[i], types[i] = b.Bytes(), w.FormDataContentType()
	}

	requireHeldWithinBudget(t, sp, h, "multipart uploads", http.StatusCreated, bodies, func(i int, body io.Reader) *http.Request {
		req := httptest.NewRequest(http.MethodPost, "/files", body)
		req.Header.Set("Content-Type", types[i])
		return req
	})
}

// TestTusBuffersStayWithinBudget stops many tus PATCHes in the middle of
// their chunk and checks that the copies into the uploads' files, which
// borrow the spool's working buffers as the local server has them do, stay
// within the memory budget and the small working buffers beyond it.
// Buffers of the store's own would be several MiB per PATCH.
func TestTusBuffersStayWithinBudget(t *testing.T) {
	sp, h := budgetedHandler(t, true)

	locs := make([]string, stalledUploads)
	bodies := make([][]byte, stalledUploads)
	body := bytes.Repeat([]byte{7}, stalledSize)
	for i := range stalledUploads {
		req := httptest.NewRequest(http.MethodPost, "/tus/", nil)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Upload-Length", strconv.Itoa(stalledSize))
		req.Header.Set("Upload-Metadata", "filename "+base64.StdEncoding.EncodeToString([]byte("t"+strconv.Itoa(i)+".bin")))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
		locs[i], bodies[i] = rec.Header().Get("Location"), body
	}

	requireHeldWithinBudget(t, sp, h, "tus PATCHes", http.StatusNoContent, bodies, func(i int, body io.Reader) *http.Request {
		req := httptest.NewRequest(http.MethodPatch, locs[i], body)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Upload-Offset", "0")
		return req
	})
}

const (
	stalledUploads = 32
	stalledBudget  = 1 << 20
	stalledSize    = 3 << 20
)

// budgetedHandler is the API over a directory store with a spooler of a
// small memory budget; lend has the store borrow the spool's working
// buffers, as the local server has it do.
func budgetedHandler(t *testing.T, lend bool) (*spool.Spooler, http.Handler) {
	t.Helper()
	sp, err := spool.New(spool.Config{Dir: t.TempDir(), Threshold: 64 << 10, MemoryBudget: stalledBudget})
	require.NoError(t, err)
	var opts dirstore.Options
	if lend {
		opts.Buffers = sp.Buffer
	}
	st, _, err := dirstore.Open(t.TempDir(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return sp, api.New(api.Config{Spooler: sp, Store: st, Logger: slog.New(slog.DiscardHandler)})
}

// requireHeldWithinBudget serves one request a body at once, each body
// stopped in its middle, and checks that the heap they hold there stays
// within the memory budget and two small working buffers per request
// beyond it; then it lets them finish, each answering want, and checks
// that every buffer was given back. Each request may also hold some for
// its request, recorder, batch and goroutines (more under the race
// detector). A window outside the budget alone would be 256 KiB more per
// request.
func requireHeldWithinBudget(t *testing.T, sp *spool.Spooler, h http.Handler, what string, want int, bodies [][]byte, newRequest func(i int, body io.Reader) *http.Request) {
	t.Helper()
	before := uploadtest.LiveHeap()
	open := make(chan struct{})
	var reached, done sync.WaitGroup
	reached.Add(len(bodies))
	codes := make(chan int, len(bodies))
	for i, b := range bodies {
		half := len(b) / 2
		req := newRequest(i, &uploadtest.StallReader{Head: b[:half], Tail: b[half:], Reached: reached.Done, Open: open})
		req.ContentLength = int64(len(b))
		done.Add(1)
		go func() {
			defer done.Done()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			codes <- rec.Code
		}()
	}
	reached.Wait()
	held := uploadtest.LiveHeap() - before
	close(open)
	done.Wait()
	close(codes)
	for code := range codes {
		assert.Equal(t, want, code)
	}

	limit := int64(stalledBudget + len(bodies)*(2*spool.SmallBufferSize+96<<10))
	t.Logf("%d %s stopped midway: %.1f MiB of heap held (limit %.1f MiB)",
		len(bodies), what, float64(held)/(1<<20), float64(limit)/(1<<20))
	assert.LessOrEqual(t, held, limit)
	assert.Zero(t, sp.Stats().MemoryInUse, "every buffer given back")
}
