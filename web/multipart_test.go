package web_test

import (
	"bytes"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/minio/crc64nvme"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/store"
)

// TestPageMultipart sends a file of three parts. It goes through the
// multipart flow: POST /uploads, the part PUTs, three at a time, with more
// part URLs fetched when the first page runs out, a part that storage
// refuses once sent again, and the completion. The page then shows the
// stored file as it shows a direct upload.
func TestPageMultipart(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, "", rec.wrap, firstPageOfOne(t), storageHiccup(2))
	size := 2*store.DefaultPartSize + 5<<20 + 321
	big := writeFile(t, t.TempDir(), "big.bin", size, 7)

	ctx := openWith(t, srv.URL, big)
	settle(t, ctx, "upload-1", "big.bin", "done")

	sent, err := os.ReadFile(big)
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join(srv.uploads, "big.bin"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(sent, got), "the stored file (%d bytes) differs from the one sent (%d bytes)", len(got), len(sent))
	assert.Equal(t, uploadtest.SHA256File(t, big), text(t, ctx, "#upload-1 .sha256"), "the SHA-256 shown")
	assert.Equal(t, "parts", text(t, ctx, "#upload-1 .spool"))
	assert.Equal(t, strconv.Itoa(size), attr(t, ctx, "#upload-1 .size", "data-bytes"))
	assert.Equal(t, "Done", text(t, ctx, "#upload-1 .state"))
	assert.True(t, eval[bool](t, ctx, `(p => p.value === p.max)(document.querySelector('#upload-1 progress'))`), "the progress bar is not full")

	assert.Equal(t, map[string]int{
		"POST /uploads":               1,
		"GET /uploads/{id}/parts":     1,
		"PUT part 1":                  1,
		"PUT part 2":                  2, // refused once
		"PUT part 3":                  1,
		"POST /uploads/{id}/complete": 1,
	}, rec.uploadRoutes())
	for _, r := range rec.requests() {
		if r.route() == "GET /uploads/{id}/parts" {
			assert.Equal(t, "from=2", r.Query, "the page fetched part URLs from the wrong part")
		}
		if r.route() == "POST /uploads" {
			// The page's own SHA-256 and CRC64NVME, computed a slice at a
			// time, against Go's of the whole file; the server checked
			// them too, or the upload would have failed.
			cr := r.create(t)
			assert.Equal(t, uploadtest.SHA256File(t, big), cr.SHA256, "the SHA-256 the page declared")
			assert.Equal(t, store.EncodeCRC64NVME(crc64nvme.Checksum(sent)), cr.CRC64NVME, "the CRC64NVME the page declared")
			// Each part's, from the same read, against Go's: the last
			// part is shorter than the others.
			assert.Equal(t, int64(store.DefaultPartSize), cr.PartSize, "the part size the page declared")
			assert.Equal(t, partCRCs(sent, store.DefaultPartSize), cr.PartCRC64NVME, "the parts' CRC64NVME the page declared")
		}
	}
	assertEmpty(t, filepath.Join(srv.uploads, ".spillway-uploads"))
	assertEmpty(t, srv.spool)
	wait(t, ctx, `#stored tr[data-name="big.bin"]`)
}

// TestPageChecksumsMatchGo sends in parts a file whose SHA-256 padding
// takes two blocks (its size is 60 past a multiple of 64): the checksums
// the page declares are Go's, and the server, which checks both, stores it.
func TestPageChecksumsMatchGo(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, "", rec.wrap)
	size := 4<<20 + 60
	f := writeFile(t, t.TempDir(), "pad.bin", size, 11)
	ctx := openWith(t, srv.URL, f)
	settle(t, ctx, "upload-1", "pad.bin", "done")
	sent, err := os.ReadFile(f)
	require.NoError(t, err)
	var creates int
	for _, r := range rec.requests() {
		if r.route() != "POST /uploads" {
			continue
		}
		creates++
		cr := r.create(t)
		assert.Equal(t, uploadtest.SHA256File(t, f), cr.SHA256)
		assert.Equal(t, store.EncodeCRC64NVME(crc64nvme.Checksum(sent)), cr.CRC64NVME)
		assert.Equal(t, []string{store.EncodeCRC64NVME(crc64nvme.Checksum(sent))}, cr.PartCRC64NVME, "one part, the whole file")
	}
	assert.Equal(t, 1, creates, "sent in parts")
	assert.Equal(t, uploadtest.SHA256File(t, f), text(t, ctx, "#upload-1 .sha256"))
}

// TestPageMultipartCancel cancels a file while its parts are on their way:
// the server holds them until the page has cancelled, so the test knows
// they are in flight. Nothing of the upload is left: the page deletes it.
// Retry then starts over and sends the file.
func TestPageMultipartCancel(t *testing.T) {
	rec := &recorder{}
	gate := &partGate{arrived: make(chan struct{}, 16), release: make(chan struct{})}
	srv := startServer(t, "", rec.wrap, gate.wrap)
	t.Cleanup(gate.open) // before the server closes, which waits for held requests
	big := writeFile(t, t.TempDir(), "big.bin", store.DefaultPartSize+4<<20, 8)

	ctx := openWith(t, srv.URL, big)
	for range 2 { // both parts are on their way
		receive(t, ctx, gate.arrived, "a part PUT")
	}
	cancelRow(t, ctx, "upload-1")

	del := rec.waitFor(t, ctx, "DELETE /uploads/{id}")
	assert.Equal(t, http.StatusNoContent, del.Status, "the page's DELETE of the upload")
	gate.open() // the held parts go on, to an upload that is gone
	gate.held.Wait()
	assert.NoFileExists(t, filepath.Join(srv.uploads, "big.bin"))
	assertEmpty(t, filepath.Join(srv.uploads, ".spillway-uploads"))
	assertEmpty(t, srv.spool)

	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#upload-1 .retry"))))
	settle(t, ctx, "upload-1", "big.bin", "done")
	assert.Equal(t, uploadtest.SHA256File(t, big), text(t, ctx, "#upload-1 .sha256"))
	assert.Equal(t, uploadtest.SHA256File(t, big), uploadtest.SHA256File(t, filepath.Join(srv.uploads, "big.bin")))
	assert.Equal(t, map[string]int{
		"POST /uploads":               2, // Retry starts over
		"DELETE /uploads/{id}":        1,
		"PUT part 1":                  2,
		"PUT part 2":                  2,
		"POST /uploads/{id}/complete": 1,
	}, rec.uploadRoutes())
	assertEmpty(t, filepath.Join(srv.uploads, ".spillway-uploads"))
}

// TestPageMultipartToken runs the server with a token. A large file sent
// without it fails with the 401 in words; with the token typed in, Retry
// (from the keyboard) sends it in parts. The API requests carry the token;
// the part PUTs, whose URLs are their credential, never do.
func TestPageMultipartToken(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, "t0k", rec.wrap)
	big := writeFile(t, t.TempDir(), "big.bin", store.DefaultPartSize+1<<20, 9)

	ctx := openWith(t, srv.URL, big)
	settle(t, ctx, "upload-1", "big.bin", "error")
	assert.Equal(t, "unauthorized", attr(t, ctx, "#upload-1", "data-error-code"))
	msg := text(t, ctx, "#upload-1 .error")
	for _, want := range []string{"401", "unauthorized", "a valid bearer token is required", "request ID"} {
		assert.Contains(t, msg, want, "the row's error")
	}
	wait(t, ctx, "#auth-message")
	assert.Contains(t, text(t, ctx, "#auth-message"), "needs an access token")
	assertEmpty(t, filepath.Join(srv.uploads, ".spillway-uploads"))
	before := len(rec.requests())

	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("token"), "t0k"),
		chromedp.Focus(chromedp.CSS("#upload-1 .retry")),
		chromedp.KeyEvent("\r"),
	))
	settle(t, ctx, "upload-1", "big.bin", "done")
	assert.Equal(t, uploadtest.SHA256File(t, big), text(t, ctx, "#upload-1 .sha256"))
	assert.Equal(t, uploadtest.SHA256File(t, big), uploadtest.SHA256File(t, filepath.Join(srv.uploads, "big.bin")))
	assert.Empty(t, text(t, ctx, "#auth-message"))

	routes := map[string]int{}
	for _, r := range rec.requests()[before:] {
		route := r.route()
		switch {
		case strings.HasPrefix(route, "PUT part "):
			assert.Empty(t, r.Auth, "%s carried an Authorization header", route)
		case strings.HasPrefix(r.Path, "/uploads"):
			assert.Equal(t, "Bearer t0k", r.Auth, "%s without the token", route)
		default:
			continue
		}
		routes[route]++
	}
	assert.Equal(t, map[string]int{
		"POST /uploads":               1,
		"PUT part 1":                  1,
		"PUT part 2":                  1,
		"POST /uploads/{id}/complete": 1,
	}, routes)
}

// TestPageMultipartElsewhere gives the page part URLs on an origin its
// Content-Security-Policy does not let it reach, as a local server storing
// to an S3-compatible server on another port does. The page deletes the
// upload and sends the file whole, which such a server takes.
func TestPageMultipartElsewhere(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, "", rec.wrap, rewriteCreated(t, func(up map[string]any) {
		for _, p := range up["parts"].([]any) {
			u, err := url.Parse(p.(map[string]any)["url"].(string))
			if !assert.NoError(t, err) {
				return
			}
			u.Scheme, u.Host = "http", "192.0.2.1:7070" // TEST-NET-1: never reached
			p.(map[string]any)["url"] = u.String()
		}
	}))
	big := writeFile(t, t.TempDir(), "big.bin", 5<<20, 10)

	ctx := openWith(t, srv.URL, big)
	settle(t, ctx, "upload-1", "big.bin", "done")
	assert.Equal(t, uploadtest.SHA256File(t, big), text(t, ctx, "#upload-1 .sha256"))
	assert.Equal(t, "disk", text(t, ctx, "#upload-1 .spool"))
	del := rec.waitFor(t, ctx, "DELETE /uploads/{id}")
	assert.Equal(t, http.StatusNoContent, del.Status, "the page's DELETE of the upload")
	assert.Equal(t, map[string]int{
		"POST /uploads":        1,
		"DELETE /uploads/{id}": 1,
		"PUT /files/big.bin":   1,
	}, rec.uploadRoutes())
	assertEmpty(t, filepath.Join(srv.uploads, ".spillway-uploads"))
}

// partCRCs is each part's CRC64NVME, as Go computes it, for parts of size
// bytes.
func partCRCs(b []byte, size int) []string {
	var sums []string
	for p := range slices.Chunk(b, size) {
		sums = append(sums, store.EncodeCRC64NVME(crc64nvme.Checksum(p)))
	}
	return sums
}

// TestPageMultipartS3 sends a file of two parts to the S3 store
// (versitygw). The page declares each part's CRC64NVME; each part URL
// signs its part's (X-Amz-SignedHeaders) and lists the header, and the
// page sends it, so S3 checks each part as it arrives.
func TestPageMultipartS3(t *testing.T) {
	rec := &recorder{}
	srv := startS3Server(t, rec.wrap)
	size := store.DefaultPartSize + 5<<20 + 7
	big := writeFile(t, t.TempDir(), "big.bin", size, 12)

	ctx := openWith(t, srv.URL, big)
	settle(t, ctx, "upload-1", "big.bin", "done")

	sent, err := os.ReadFile(big)
	require.NoError(t, err)
	want := partCRCs(sent, store.DefaultPartSize)
	require.Len(t, want, 2)
	assert.Equal(t, map[string]int{
		"POST /uploads":               1,
		"PUT part 1":                  1,
		"PUT part 2":                  1,
		"POST /uploads/{id}/complete": 1,
	}, rec.uploadRoutes())
	for _, r := range rec.requests() {
		switch route := r.route(); route {
		case "POST /uploads":
			cr := r.create(t)
			assert.Equal(t, int64(store.DefaultPartSize), cr.PartSize)
			assert.Equal(t, want, cr.PartCRC64NVME, "the parts' CRC64NVME the page declared")
		case "PUT part 1", "PUT part 2":
			n, _ := strconv.Atoi(strings.TrimPrefix(route, "PUT part "))
			q, err := url.ParseQuery(r.Query)
			require.NoError(t, err)
			assert.Contains(t, strings.Split(q.Get("X-Amz-SignedHeaders"), ";"), "x-amz-checksum-crc64nvme", "%s: the URL does not sign the part's CRC", route)
			assert.Equal(t, want[n-1], r.CRC64NVME, "%s: the CRC64NVME header the page sent", route)
			assert.Equal(t, http.StatusOK, r.Status, route)
		}
	}
	got, err := os.ReadFile(srv.stored("big.bin"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(sent, got), "the stored object (%d bytes) differs from the file sent (%d bytes)", len(got), len(sent))
	assert.Equal(t, uploadtest.SHA256File(t, big), text(t, ctx, "#upload-1 .sha256"))
	srv.assertNoUploadsLeft(t)
}

// TestPagePartDamaged damages a part on its way to storage, on
// each store. Storage refuses it as it arrives, by the part's declared
// CRC64NVME, not at completion: a part damaged once is sent again, from
// the file, and the upload completes; a part damaged every time fails the
// upload with storage's words and without a completion, and the page
// deletes the upload.
func TestPagePartDamaged(t *testing.T) {
	for _, tc := range []struct {
		store string
		start func(*testing.T, ...func(http.Handler) http.Handler) server
		code  string // storage's word for a part that does not match its CRC
	}{
		{"dir", func(t *testing.T, wrap ...func(http.Handler) http.Handler) server {
			return startServer(t, "", wrap...)
		}, "bad_checksum"},
		{"s3", startS3Server, "BadDigest"},
	} {
		t.Run(tc.store, func(t *testing.T) {
			size := store.DefaultPartSize + 1<<20 + 3

			t.Run("once", func(t *testing.T) {
				rec := &recorder{}
				srv := tc.start(t, rec.wrap, (&damagePart{n: "2", times: 1}).wrap)
				big := writeFile(t, t.TempDir(), "big.bin", size, 13)
				ctx := openWith(t, srv.URL, big)
				settle(t, ctx, "upload-1", "big.bin", "done")
				assert.Equal(t, map[string]int{
					"POST /uploads":               1,
					"PUT part 1":                  1,
					"PUT part 2":                  2, // damaged, refused, sent again
					"POST /uploads/{id}/complete": 1,
				}, rec.uploadRoutes())
				first := rec.waitFor(t, ctx, "PUT part 2")
				assert.Equal(t, http.StatusBadRequest, first.Status, "the damaged part")
				assert.Equal(t, uploadtest.SHA256File(t, big), uploadtest.SHA256File(t, srv.stored("big.bin")))
				srv.assertNoUploadsLeft(t)
			})

			t.Run("always", func(t *testing.T) {
				rec := &recorder{}
				srv := tc.start(t, rec.wrap, (&damagePart{n: "2", times: -1}).wrap)
				big := writeFile(t, t.TempDir(), "big.bin", size, 14)
				ctx := openWith(t, srv.URL, big)
				settle(t, ctx, "upload-1", "big.bin", "error")
				require.Zero(t, rec.uploadRoutes()["POST /uploads/{id}/complete"], "the page completed an upload with a refused part")
				assert.Equal(t, tc.code, attr(t, ctx, "#upload-1", "data-error-code"))
				shown := text(t, ctx, "#upload-1 .error")
				t.Logf("the row says: %s", shown)
				assert.Contains(t, shown, "Part 2 of 2")
				del := rec.waitFor(t, ctx, "DELETE /uploads/{id}")
				assert.Equal(t, http.StatusNoContent, del.Status, "the page's DELETE of the upload")
				assert.Equal(t, 3, rec.uploadRoutes()["PUT part 2"], "part 2 is sent as many times as the page tries")
				assert.NoFileExists(t, srv.stored("big.bin"))
				srv.assertNoUploadsLeft(t)
			})
		})
	}
}
