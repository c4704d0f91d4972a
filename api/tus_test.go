package api_test

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
)

func tusMeta(name string) string {
	return "filename " + base64.StdEncoding.EncodeToString([]byte(name)) + ",filetype dGV4dC9wbGFpbg=="
}

// tusCreate creates an upload of size bytes (-1: deferred) and returns its path.
func (s *server) tusCreate(t *testing.T, name string, size int64) string {
	t.Helper()
	req := s.request(t, http.MethodPost, "/tus/", nil, 0)
	req.Header.Set("Tus-Resumable", "1.0.0")
	if size < 0 {
		req.Header.Set("Upload-Defer-Length", "1")
	} else {
		req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
	}
	req.Header.Set("Upload-Metadata", tusMeta(name))
	resp, body := s.do(t, req)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	s.waitServed(t)
	assert.Equal(t, "1.0.0", resp.Header.Get("Tus-Resumable"))
	assert.NotEmpty(t, resp.Header.Get("Upload-Expires"))
	loc := resp.Header.Get("Location")
	require.Regexp(t, `^/tus/[A-Z2-7]{26}$`, loc)
	return loc
}

func (s *server) tusPatch(t *testing.T, path string, offset int64, data []byte, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req := s.request(t, http.MethodPatch, path, bytes.NewReader(data), int64(len(data)))
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, body := s.do(t, req)
	s.waitServed(t)
	return resp, body
}

func (s *server) tusOffset(t *testing.T, path string) int64 {
	t.Helper()
	req := s.request(t, http.MethodHead, path, nil, 0)
	req.Header.Set("Tus-Resumable", "1.0.0")
	resp, _ := s.do(t, req)
	s.waitServed(t)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	n, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	require.NoError(t, err)
	return n
}

// requireTusFinished checks that the tus uploads left in the store's
// upload state are finished ones' records: a state and no bytes.
func requireTusFinished(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, ".spillway-uploads", "tus"))
	require.NoError(t, err)
	for _, e := range entries {
		files, err := os.ReadDir(filepath.Join(dir, ".spillway-uploads", "tus", e.Name()))
		require.NoError(t, err)
		require.Len(t, files, 1, e.Name())
		assert.Equal(t, "state.json", files[0].Name())
	}
}

// requireTusGone checks that nothing of any tus upload is left in the
// store's upload state.
func requireTusGone(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, ".spillway-uploads", "tus"))
	if !os.IsNotExist(err) {
		require.NoError(t, err)
		assert.Empty(t, entries)
	}
}

func TestTusOptionsAdvertisesTheExtensions(t *testing.T) {
	s := newServer(t, options{token: "secret"})
	req := s.request(t, http.MethodOptions, "/tus/", nil, 0)
	resp, _ := s.do(t, req)
	s.waitServed(t)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, "1.0.0", resp.Header.Get("Tus-Version"))
	assert.Equal(t, "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum", resp.Header.Get("Tus-Extension"))
	assert.Equal(t, "sha1,sha256,crc32", resp.Header.Get("Tus-Checksum-Algorithm"))
	assert.NotEmpty(t, resp.Header.Get("Tus-Max-Size"))
}

func TestTusUploadInChunksPublishesTheFile(t *testing.T) {
	s := newServer(t, options{})
	data := uploadtest.File{Name: "a.bin", Size: 3<<20 + 17, Seed: 7}.Bytes()
	loc := s.tusCreate(t, "dir/a.bin", int64(len(data)))
	assert.Zero(t, s.tusOffset(t, loc))

	cut := int64(1 << 20)
	resp, body := s.tusPatch(t, loc, 0, data[:cut])
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	assert.Equal(t, strconv.FormatInt(cut, 10), resp.Header.Get("Upload-Offset"))
	assert.NotEmpty(t, resp.Header.Get("Upload-Expires"))
	assert.Empty(t, resp.Header.Get("Spillway-Sha256"))
	assert.Equal(t, cut, s.tusOffset(t, loc))
	_, err := os.Stat(filepath.Join(s.dir, "dir/a.bin"))
	require.True(t, os.IsNotExist(err), "published before the last byte")

	resp, body = s.tusPatch(t, loc, cut, data[cut:])
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	sum := sha256.Sum256(data)
	assert.Equal(t, hex.EncodeToString(sum[:]), resp.Header.Get("Spillway-Sha256"))
	assert.Equal(t, "/files/dir/a.bin", resp.Header.Get("Spillway-File"))
	assert.NotEmpty(t, resp.Header.Get("Spillway-Crc64nvme"))
	got, err := os.ReadFile(filepath.Join(s.dir, "dir/a.bin"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got))
	requireTusFinished(t, s.dir)
	result := func(resp *http.Response) []string {
		return []string{resp.Header.Get("Spillway-File"), resp.Header.Get("Spillway-Sha256"), resp.Header.Get("Spillway-Crc64nvme")}
	}
	want := result(resp)

	// A finished upload answers a client that resumes its stored URL: it
	// is complete, and what it became.
	req := s.request(t, http.MethodHead, loc, nil, 0)
	req.Header.Set("Tus-Resumable", "1.0.0")
	resp, _ = s.do(t, req)
	s.waitServed(t)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, strconv.Itoa(len(data)), resp.Header.Get("Upload-Offset"))
	assert.Equal(t, strconv.Itoa(len(data)), resp.Header.Get("Upload-Length"))
	assert.Equal(t, want, result(resp))

	// An empty PATCH at its end gets the last answer again; nothing is
	// stored again, and nothing else is taken.
	resp, body = s.tusPatch(t, loc, int64(len(data)), nil)
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	assert.Equal(t, strconv.Itoa(len(data)), resp.Header.Get("Upload-Offset"))
	assert.Equal(t, want, result(resp))
	resp, body = s.tusPatch(t, loc, 0, data[:10])
	requireError(t, resp, body, http.StatusConflict, "offset_mismatch")
	resp, body = s.tusPatch(t, loc, int64(len(data)), []byte("more"))
	requireError(t, resp, body, http.StatusRequestEntityTooLarge, "too_large")
	got, err = os.ReadFile(filepath.Join(s.dir, "dir/a.bin"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got))

	// Terminating it forgets the record, not the file.
	req = s.request(t, http.MethodDelete, loc, nil, 0)
	req.Header.Set("Tus-Resumable", "1.0.0")
	resp, _ = s.do(t, req)
	s.waitServed(t)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	requireTusGone(t, s.dir)
	req = s.request(t, http.MethodHead, loc, nil, 0)
	req.Header.Set("Tus-Resumable", "1.0.0")
	resp, _ = s.do(t, req)
	s.waitServed(t)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	got, err = os.ReadFile(filepath.Join(s.dir, "dir/a.bin"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got))
}

func TestTusWrongOffsetIsRefusedAndChangesNothing(t *testing.T) {
	s := newServer(t, options{})
	loc := s.tusCreate(t, "a.bin", 10)
	resp, body := s.tusPatch(t, loc, 0, []byte("01234"))
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	for _, off := range []int64{0, 3, 6} {
		resp, body = s.tusPatch(t, loc, off, []byte("xx"))
		requireError(t, resp, body, http.StatusConflict, "offset_mismatch")
	}
	assert.Equal(t, int64(5), s.tusOffset(t, loc))
	resp, body = s.tusPatch(t, loc, 5, []byte("56789"))
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	got, err := os.ReadFile(filepath.Join(s.dir, "a.bin"))
	require.NoError(t, err)
	assert.Equal(t, "0123456789", string(got))
}

// A chunk for the wrong offset is refused before its bytes are looked at:
// under an allow list, a chunk sent again for offset 0, of a type not
// allowed, leaves the upload as it was.
func TestTusWrongOffsetIsRefusedBeforeItsType(t *testing.T) {
	s := newServer(t, options{allowTypes: "application/pdf"})
	loc := s.tusCreate(t, "a.pdf", int64(len(pdfBytes)))
	resp, body := s.tusPatch(t, loc, 0, pdfBytes[:10])
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	resp, body = s.tusPatch(t, loc, 0, txtBytes)
	requireError(t, resp, body, http.StatusConflict, "offset_mismatch")
	resp, body = s.tusPatch(t, loc, 10, pdfBytes[10:])
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	got, err := os.ReadFile(filepath.Join(s.dir, "a.pdf"))
	require.NoError(t, err)
	assert.Equal(t, pdfBytes, got)
}

func TestTusChecksums(t *testing.T) {
	s := newServer(t, options{})
	chunk := []byte("hello, tus")
	sha1Sum, sha256Sum := sha1.Sum(chunk), sha256.Sum256(chunk)
	crc := binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(chunk))
	b64 := base64.StdEncoding.EncodeToString
	for _, good := range []string{"sha1 " + b64(sha1Sum[:]), "sha256 " + b64(sha256Sum[:]), "crc32 " + b64(crc)} {
		loc := s.tusCreate(t, "good.bin", int64(len(chunk)*2))
		resp, body := s.tusPatch(t, loc, 0, chunk, "Upload-Checksum", good)
		require.Equal(t, http.StatusNoContent, resp.StatusCode, "%s: %s", good, body)
		require.Equal(t, int64(len(chunk)), s.tusOffset(t, loc))

		wrong := bytes.ToUpper(chunk)
		resp, body = s.tusPatch(t, loc, int64(len(chunk)), wrong, "Upload-Checksum", good)
		requireError(t, resp, body, 460, "checksum_mismatch")
		require.Equal(t, int64(len(chunk)), s.tusOffset(t, loc), "a chunk that failed its checksum was kept")

		req := s.request(t, http.MethodDelete, loc, nil, 0)
		req.Header.Set("Tus-Resumable", "1.0.0")
		resp, _ = s.do(t, req)
		s.waitServed(t)
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
	}
	loc := s.tusCreate(t, "bad.bin", 10)
	for _, bad := range []string{"md5 " + b64(sha1Sum[:16]), "sha1 not-base64", "sha256 " + b64(sha1Sum[:])} {
		resp, body := s.tusPatch(t, loc, 0, chunk, "Upload-Checksum", bad)
		requireError(t, resp, body, http.StatusBadRequest, "checksum_algorithm")
	}
	assert.Zero(t, s.tusOffset(t, loc))
}

func TestTusRefusals(t *testing.T) {
	s := newServer(t, options{})
	post := func(hdr ...string) (*http.Response, []byte) {
		req := s.request(t, http.MethodPost, "/tus/", nil, 0)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, body := s.do(t, req)
		s.waitServed(t)
		return resp, body
	}
	resp, body := post("Upload-Length", "5", "Upload-Metadata", tusMeta("a.bin"))
	requireError(t, resp, body, http.StatusPreconditionFailed, "tus_version")
	assert.Equal(t, "1.0.0", resp.Header.Get("Tus-Version"))
	resp, body = post("Tus-Resumable", "0.2.2", "Upload-Length", "5", "Upload-Metadata", tusMeta("a.bin"))
	requireError(t, resp, body, http.StatusPreconditionFailed, "tus_version")
	resp, body = post("Tus-Resumable", "1.0.0", "Upload-Length", "5", "Upload-Metadata", tusMeta("../a.bin"))
	requireError(t, resp, body, http.StatusBadRequest, "invalid_name")
	resp, body = post("Tus-Resumable", "1.0.0", "Upload-Length", "5", "Upload-Metadata", "filetype dGV4dC9wbGFpbg==")
	requireError(t, resp, body, http.StatusBadRequest, "invalid_name")
	resp, body = post("Tus-Resumable", "1.0.0", "Upload-Metadata", tusMeta("a.bin"))
	requireError(t, resp, body, http.StatusBadRequest, "bad_request")
	resp, body = post("Tus-Resumable", "1.0.0", "Upload-Length", "5", "Upload-Metadata", "filename !!!")
	requireError(t, resp, body, http.StatusBadRequest, "bad_request")
	resp, body = post("Tus-Resumable", "1.0.0", "Upload-Length", strconv.FormatInt(1<<60, 10), "Upload-Metadata", tusMeta("a.bin"))
	requireError(t, resp, body, http.StatusRequestEntityTooLarge, "too_large")
	require.NoError(t, os.WriteFile(filepath.Join(s.dir, "taken.bin"), []byte("x"), 0o644))
	resp, body = post("Tus-Resumable", "1.0.0", "Upload-Length", "5", "Upload-Metadata", tusMeta("taken.bin"))
	requireError(t, resp, body, http.StatusConflict, "exists")
	requireTusGone(t, s.dir)

	loc := s.tusCreate(t, "a.bin", 5)
	resp, body = s.tusPatch(t, loc, 0, []byte("0123456"))
	requireError(t, resp, body, http.StatusRequestEntityTooLarge, "too_large")
	resp, body = s.tusPatch(t, loc, 0, []byte("01"), "Content-Type", "application/octet-stream")
	requireError(t, resp, body, http.StatusUnsupportedMediaType, "tus_media_type")
	resp, body = s.tusPatch(t, "/tus/AAAAAAAAAAAAAAAAAAAAAAAAAA", 0, []byte("01"))
	requireError(t, resp, body, http.StatusNotFound, "tus_upload_not_found")
	resp, body = s.tusPatch(t, "/tus/..%2Fetc", 0, []byte("01"))
	requireError(t, resp, body, http.StatusNotFound, "tus_upload_not_found")
	assert.Zero(t, s.tusOffset(t, loc))
}

// A name taken while the upload was under way is refused at its last
// chunk, as every publish refuses it, and the upload is discarded.
func TestTusNameTakenMeanwhile(t *testing.T) {
	s := newServer(t, options{})
	loc := s.tusCreate(t, "a.bin", 4)
	require.NoError(t, os.WriteFile(filepath.Join(s.dir, "a.bin"), []byte("mine"), 0o644))
	resp, body := s.tusPatch(t, loc, 0, []byte("tus!"))
	requireError(t, resp, body, http.StatusConflict, "exists")
	got, err := os.ReadFile(filepath.Join(s.dir, "a.bin"))
	require.NoError(t, err)
	assert.Equal(t, "mine", string(got))
	requireTusGone(t, s.dir)
}

func TestTusCreationWithUploadDeferLengthAndOverride(t *testing.T) {
	s := newServer(t, options{})
	// creation-with-upload: the whole file in the POST.
	req := s.request(t, http.MethodPost, "/tus/", bytes.NewReader([]byte("whole")), 5)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", "5")
	req.Header.Set("Upload-Metadata", tusMeta("whole.txt"))
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	resp, body := s.do(t, req)
	s.waitServed(t)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	assert.Equal(t, "5", resp.Header.Get("Upload-Offset"))
	assert.NotEmpty(t, resp.Header.Get("Spillway-Sha256"))

	// An empty file is stored at its creation.
	s.tusCreate(t, "empty.txt", 0)

	// Deferred length, declared with the last chunk, sent as a POST with
	// X-HTTP-Method-Override.
	loc := s.tusCreate(t, "deferred.txt", -1)
	req = s.request(t, http.MethodHead, loc, nil, 0)
	req.Header.Set("Tus-Resumable", "1.0.0")
	resp, _ = s.do(t, req)
	s.waitServed(t)
	assert.Equal(t, "1", resp.Header.Get("Upload-Defer-Length"))
	resp, body = s.tusPatch(t, loc, 0, []byte("abc"))
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	req = s.request(t, http.MethodPost, loc, bytes.NewReader([]byte("def")), 3)
	req.Header.Set("X-HTTP-Method-Override", "PATCH")
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", "3")
	req.Header.Set("Upload-Length", "6")
	resp, body = s.do(t, req)
	s.waitServed(t)
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	assert.NotEmpty(t, resp.Header.Get("Spillway-Sha256"))

	for name, want := range map[string]string{"whole.txt": "whole", "empty.txt": "", "deferred.txt": "abcdef"} {
		got, err := os.ReadFile(filepath.Join(s.dir, name))
		require.NoError(t, err)
		assert.Equal(t, want, string(got), name)
	}
	requireTusFinished(t, s.dir)
}

// Two requests appending to one upload: the second is refused with 423
// while the first holds the upload, and the file is the first one's.
func TestTusTwoPatchesAtOnce(t *testing.T) {
	s := newServer(t, options{})
	loc := s.tusCreate(t, "a.bin", 8)
	pr, pw := io.Pipe()
	first := make(chan *http.Response, 1)
	go func() {
		req := s.request(t, http.MethodPatch, loc, pr, 8)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Upload-Offset", "0")
		resp, err := s.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		first <- resp
	}()
	_, err := pw.Write([]byte("1111"))
	require.NoError(t, err)
	// Wait until the first request holds the upload's lock: the flock on
	// its data file. Probing with a flock of our own would take the lock
	// for a moment and could refuse the first request, so read the
	// kernel's table of locks instead.
	waitFlocked(t, filepath.Join(s.dir, ".spillway-uploads", "tus", filepath.Base(loc), "data"))
	resp, body := s.tusPatch(t, loc, 0, []byte("22222222"))
	requireError(t, resp, body, http.StatusLocked, "locked")
	_, err = pw.Write([]byte("1111"))
	require.NoError(t, err)
	pw.Close()
	resp = <-first
	require.NotNil(t, resp)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	s.waitServed(t)
	got, err := os.ReadFile(filepath.Join(s.dir, "a.bin"))
	require.NoError(t, err)
	assert.Equal(t, "11111111", string(got))
}

// waitFlocked waits until some process holds a flock on the file at path,
// as /proc/locks shows it, without touching the lock itself.
func waitFlocked(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat("/proc/locks"); err != nil {
		t.Skipf("no /proc/locks to see the upload's lock in (%v)", err)
	}
	var st unix.Stat_t
	require.NoError(t, unix.Stat(path, &st))
	// /proc/locks names a file as major:minor:inode, the device in hex.
	file := fmt.Sprintf("%02x:%02x:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino)
	deadline := time.Now().Add(20 * time.Second)
	for {
		locks, err := os.ReadFile("/proc/locks")
		require.NoError(t, err)
		for _, line := range strings.Split(string(locks), "\n") {
			f := strings.Fields(line)
			if len(f) > 5 && f[1] == "FLOCK" && f[5] == file {
				return
			}
		}
		require.True(t, time.Now().Before(deadline), "the first PATCH never took the lock on %s", file)
		runtime.Gosched()
	}
}
