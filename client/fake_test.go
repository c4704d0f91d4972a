package client_test

import (
	"cmp"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"spillway/wire"

	"github.com/minio/crc64nvme"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fake serves the upload API of the README and docs/MULTIPART.md in
// memory, with knobs to make it misbehave. Its part URLs are its own, like
// the local directory store's; it records who sent what, so that tests can
// assert, among others, that no credential ever reaches a part URL.
type fake struct {
	t        *testing.T
	srv      *httptest.Server
	token    string // required as a bearer token on API routes when set
	sigv4    bool   // require a SigV4 Authorization and a true X-Amz-Content-Sha256 on API routes
	partSize int64
	pageSize int           // part URLs per page
	relative bool          // hand out part URLs without scheme and host
	lieSHA   bool          // answer 201s with a SHA-256 other than the bytes'
	lieCRC   bool          // answer 201s with a CRC64NVME other than the bytes'
	ttl      time.Duration // of part URLs; zero: an hour

	mu           sync.Mutex
	files        map[string][]byte
	uploads      map[string]*fakeUpload
	nextID       int
	creates      int
	lastCRC      string               // the crc64nvme the last create declared
	lastPartCRCs []string             // and its part_crc64nvme
	pages        []int                // the from of every GET .../parts
	puts         map[string][]partPut // per upload, the part PUTs in arrival order (stored or not)
	refused      int                  // part PUTs refused as expired
	partAuth     []string             // credentials seen on part URLs; must stay empty
	apiSeen      int                  // requests to API routes
	// partHook runs before a part's body is read; when it returns true it
	// has answered the request itself.
	partHook func(w http.ResponseWriter, r *http.Request, id string, n int) bool
	// gate runs with mu held once a part's body has been read, before it
	// is stored; false drops the part without storing it (and without an
	// answer until the client goes away).
	gate func(id string, n int, run string) bool
	// cutOff runs with mu held once a part's body has been read and
	// checked; true stores the part as storage that keeps a body cut off
	// by an interrupt does (versitygw v1.8.0: zero-padded to its size,
	// listed as received), and answers nothing until the client goes away.
	cutOff func(id string, n int, run string) bool
	// bareETags lists the ETags of received parts without their quotes.
	bareETags bool
	// completeHook runs with mu held before a complete is checked; ctx is
	// the completion request's.
	completeHook  func(ctx context.Context, u *fakeUpload)
	busyCompletes int  // answer this many completes with 503 busy
	staleFirst    bool // the URLs of the create response are expired
	corruptPart   int  // flip a byte of this part when it arrives
	// lostCompletes answers this many completes that succeeded with 503
	// unavailable, as a front whose function outlived it would.
	lostCompletes int
	noDigest      bool // HEAD /files/{name} gives no Repr-Digest
	heads         int  // HEAD /files/{name} requests
}

type fakeUpload struct {
	id, name, sha  string
	crc            string   // declared CRC64NVME
	partCRCs       []string // declared, by part number - 1
	size, partSize int64
	count          int
	parts          map[int]fakePart
	minGen         int // URLs of an earlier generation are expired
}

// partPut is one PUT of a part, by the run of the client that sent it (its
// X-Test-Run header).
type partPut struct {
	n   int
	run string
}

type fakePart struct {
	data []byte
	etag string
}

func newFake(t *testing.T) *fake {
	f := &fake{t: t, partSize: 1024, pageSize: 500, files: map[string][]byte{},
		uploads: map[string]*fakeUpload{}, puts: map[string][]partPut{}}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /files/{name...}", f.api(f.putFile))
	mux.HandleFunc("HEAD /files/{name...}", f.api(f.headFile))
	mux.HandleFunc("POST /uploads", f.api(f.create))
	mux.HandleFunc("GET /uploads/{id}", f.api(f.status))
	mux.HandleFunc("DELETE /uploads/{id}", f.api(f.abort))
	mux.HandleFunc("GET /uploads/{id}/parts", f.api(f.partURLs))
	mux.HandleFunc("POST /uploads/{id}/complete", f.api(f.complete))
	mux.HandleFunc("PUT /uploads/{id}/parts/{n}", f.putPart)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg, "request_id": "req-" + code}})
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// api checks the credentials of a request to an API route and hands the
// handler its body.
func (f *fake) api(h func(w http.ResponseWriter, r *http.Request, body []byte)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		f.mu.Lock()
		f.apiSeen++
		f.mu.Unlock()
		if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
			writeErr(w, http.StatusUnauthorized, "unauthorized", "a valid bearer token is required")
			return
		}
		if f.sigv4 {
			if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=") ||
				r.Header.Get("X-Amz-Date") == "" || r.Header.Get("X-Amz-Content-Sha256") != hexSHA(body) {
				writeErr(w, http.StatusForbidden, "unauthorized", "bad signature")
				return
			}
		}
		h(w, r, body)
	}
}

func (f *fake) putFile(w http.ResponseWriter, r *http.Request, body []byte) {
	name := r.PathValue("name")
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.files[name]; ok {
		writeErr(w, http.StatusConflict, "exists", "a file with this name already exists; choose another name or overwrite where the server allows it")
		return
	}
	f.files[name] = body
	writeJSON(w, http.StatusCreated, f.stored(name, body, "memory"))
}

// headFile answers as the API does: the size, and the SHA-256 as an RFC
// 9530 Repr-Digest when asked for with Want-Repr-Digest.
func (f *fake) headFile(w http.ResponseWriter, r *http.Request, _ []byte) {
	name := r.PathValue("name")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.heads++
	b, ok := f.files[name]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if strings.Contains(r.Header.Get("Want-Repr-Digest"), "sha-256") && !f.noDigest {
		sum := sha256.Sum256(b)
		w.Header().Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
}

func (f *fake) stored(name string, body []byte, spool string) map[string]any {
	sum, crc := hexSHA(body), crcOf(body)
	if f.lieSHA {
		sum = hexSHA(append(body, 'x'))
	}
	if f.lieCRC {
		crc = crcOf(append(body, 'x'))
	}
	return map[string]any{"files": []map[string]any{{"name": name, "size": len(body), "sha256": sum, "crc64nvme": crc, "spool": spool}}}
}

func (f *fake) create(w http.ResponseWriter, r *http.Request, body []byte) {
	var in wire.CreateUploadRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || in.Size < 1 || in.Name == "" {
		writeErr(w, http.StatusBadRequest, "bad_request", fmt.Sprint(err))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.files[in.Name]; ok {
		writeErr(w, http.StatusConflict, "exists", "a file with this name already exists; choose another name or overwrite where the server allows it")
		return
	}
	f.nextID++
	f.creates++
	f.lastCRC, f.lastPartCRCs = in.CRC64NVME, in.PartCRC64NVME
	u := &fakeUpload{id: "up" + strconv.Itoa(f.nextID), name: in.Name, sha: strings.ToLower(in.SHA256), crc: in.CRC64NVME,
		size: in.Size, partSize: cmp.Or(in.PartSize, f.partSize), partCRCs: in.PartCRC64NVME, parts: map[int]fakePart{}}
	u.count = int((u.size + u.partSize - 1) / u.partSize)
	f.uploads[u.id] = u
	gen := 0
	if f.staleFirst {
		u.minGen = 1
	}
	parts, next := f.page(r, u, 1, gen)
	w.Header().Set("Location", "/uploads/"+u.id)
	writeJSON(w, http.StatusCreated, map[string]any{"id": u.id, "name": u.name, "size": u.size, "sha256": u.sha,
		"part_size": u.partSize, "part_count": u.count, "parts": parts, "next_from": next})
}

func (u *fakeUpload) sizeOf(n int) int64 {
	if n < u.count {
		return u.partSize
	}
	return u.size - int64(u.count-1)*u.partSize
}

// page returns the part URLs from part from, signed with generation gen.
func (f *fake) page(r *http.Request, u *fakeUpload, from, gen int) ([]map[string]any, int) {
	base := "http://" + r.Host
	if f.relative {
		base = ""
	}
	var parts []map[string]any
	n := from
	for ; n <= u.count && len(parts) < f.pageSize; n++ {
		parts = append(parts, map[string]any{"n": n, "size": u.sizeOf(n), "method": "PUT",
			"url":     fmt.Sprintf("%s/uploads/%s/parts/%d?gen=%d&sig=x", base, u.id, n, gen),
			"headers": map[string]string{}, "expires": time.Now().Add(cmp.Or(f.ttl, time.Hour)).UTC().Format(time.RFC3339)})
	}
	if n > u.count {
		n = 0
	}
	return parts, n
}

func (f *fake) upload(w http.ResponseWriter, r *http.Request) *fakeUpload {
	u := f.uploads[r.PathValue("id")]
	if u == nil {
		writeErr(w, http.StatusNotFound, "upload_not_found", "no such upload")
	}
	return u
}

func (f *fake) status(w http.ResponseWriter, r *http.Request, _ []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.upload(w, r)
	if u == nil {
		return
	}
	received := []map[string]any{}
	for _, n := range slices.Sorted(maps.Keys(u.parts)) {
		etag := u.parts[n].etag
		if f.bareETags {
			etag = strings.Trim(etag, `"`)
		}
		received = append(received, map[string]any{"n": n, "size": len(u.parts[n].data), "etag": etag})
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": u.id, "name": u.name, "size": u.size, "sha256": u.sha,
		"part_size": u.partSize, "part_count": u.count, "received": received})
}

func (f *fake) abort(w http.ResponseWriter, r *http.Request, _ []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u := f.upload(w, r); u != nil {
		delete(f.uploads, u.id)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (f *fake) partURLs(w http.ResponseWriter, r *http.Request, _ []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.upload(w, r)
	if u == nil {
		return
	}
	from := 1
	if s := r.URL.Query().Get("from"); s != "" {
		from, _ = strconv.Atoi(s)
	}
	f.pages = append(f.pages, from)
	parts, next := f.page(r, u, from, u.minGen)
	writeJSON(w, http.StatusOK, map[string]any{"parts": parts, "next_from": next})
}

func (f *fake) putPart(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n, _ := strconv.Atoi(r.PathValue("n"))
	gen, _ := strconv.Atoi(r.URL.Query().Get("gen"))
	f.mu.Lock()
	for _, h := range []string{"Authorization", "X-Amz-Date", "X-Amz-Content-Sha256", "X-Amz-Security-Token"} {
		if v := r.Header.Get(h); v != "" {
			f.partAuth = append(f.partAuth, h+": "+v)
		}
	}
	f.puts[id] = append(f.puts[id], partPut{n, r.Header.Get("X-Test-Run")})
	u := f.uploads[id]
	hook := f.partHook
	f.mu.Unlock()
	if u == nil {
		writeErr(w, http.StatusNotFound, "upload_not_found", "no such upload")
		return
	}
	if gen < u.minGen {
		f.mu.Lock()
		f.refused++
		f.mu.Unlock()
		writeErr(w, http.StatusForbidden, "bad_signature", "expired")
		return
	}
	if hook != nil && hook(w, r, id, n) {
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	f.mu.Lock()
	if f.gate != nil && !f.gate(id, n, r.Header.Get("X-Test-Run")) {
		f.mu.Unlock()
		<-r.Context().Done()
		return
	}
	if n < 1 || n > u.count || int64(len(body)) != u.sizeOf(n) {
		f.mu.Unlock()
		writeErr(w, http.StatusBadRequest, "upload_mismatch", "wrong part size")
		return
	}
	if f.cutOff != nil && f.cutOff(id, n, r.Header.Get("X-Test-Run")) {
		clear(body[len(body)/2:])
		u.parts[n] = fakePart{data: body, etag: etagOf(body)}
		f.mu.Unlock()
		<-r.Context().Done()
		return
	}
	defer f.mu.Unlock()
	if n <= len(u.partCRCs) && crcOf(body) != u.partCRCs[n-1] {
		writeErr(w, http.StatusBadRequest, "bad_checksum", "the bytes do not match their checksums")
		return
	}
	if n == f.corruptPart {
		body[0] ^= 0xff
	}
	etag := etagOf(body)
	u.parts[n] = fakePart{data: body, etag: etag}
	w.Header().Set("ETag", etag)
	writeJSON(w, http.StatusOK, map[string]any{"n": n, "size": len(body), "etag": etag})
}

// etagOf is the quoted MD5 of a part's bytes, as S3 and the fake name it.
func etagOf(b []byte) string {
	sum := md5.Sum(b)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

func (f *fake) complete(w http.ResponseWriter, r *http.Request, body []byte) {
	var in wire.CompleteRequest
	if err := json.Unmarshal(body, &in); err != nil {
		writeErr(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.busyCompletes > 0 {
		f.busyCompletes--
		w.Header().Set("Retry-After", "1")
		writeErr(w, http.StatusServiceUnavailable, "busy", "too many uploads or listings are in progress; retry after the Retry-After delay")
		return
	}
	u := f.upload(w, r)
	if u == nil {
		return
	}
	if f.completeHook != nil {
		f.completeHook(r.Context(), u)
	}
	if len(in.Parts) != u.count {
		writeErr(w, http.StatusBadRequest, "upload_mismatch", "wrong part count")
		return
	}
	var data []byte
	for i, p := range in.Parts {
		got, ok := u.parts[p.Number]
		// Quoted or not, as the stores compare them.
		if p.Number != i+1 || !ok || strings.Trim(got.etag, `"`) != strings.Trim(p.ETag, `"`) {
			writeErr(w, http.StatusBadRequest, "upload_mismatch", fmt.Sprintf("part %d missing or stale", p.Number))
			return
		}
		data = append(data, got.data...)
	}
	if int64(len(data)) != u.size {
		writeErr(w, http.StatusBadRequest, "upload_mismatch", "wrong total size")
		return
	}
	if u.sha != "" && hexSHA(data) != u.sha || u.crc != "" && crcOf(data) != u.crc {
		delete(f.uploads, u.id)
		writeErr(w, http.StatusBadRequest, "bad_checksum", "the bytes do not match their checksums")
		return
	}
	delete(f.uploads, u.id)
	if _, ok := f.files[u.name]; ok {
		writeErr(w, http.StatusConflict, "exists", "a file with this name already exists; choose another name or overwrite where the server allows it")
		return
	}
	f.files[u.name] = data
	if f.lostCompletes > 0 {
		f.lostCompletes--
		writeErr(w, http.StatusServiceUnavailable, "unavailable", "the server is shutting down or ran out of time for this request; retry after the Retry-After delay")
		return
	}
	writeJSON(w, http.StatusCreated, f.stored(u.name, data, "parts"))
}

// file returns the stored file called name.
func (f *fake) file(name string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.files[name]
	return b, ok
}

// assertFile asserts that the fake stores want under name.
func (f *fake) assertFile(t *testing.T, name string, want []byte) {
	t.Helper()
	got, ok := f.file(name)
	require.True(t, ok, "%s is stored", name)
	assert.Equal(t, want, got, name)
}

// putsOf returns the part numbers PUT to upload id by any run, or by the
// runs given, in arrival order.
func (f *fake) putsOf(id string, runs ...string) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ns []int
	for _, p := range f.puts[id] {
		if len(runs) == 0 || slices.Contains(runs, p.run) {
			ns = append(ns, p.n)
		}
	}
	return ns
}

// locked runs fn with the fake's lock held, for reading what it recorded.
func (f *fake) locked(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

// crcOf is b's CRC64NVME as the API reports it.
func crcOf(b []byte) string {
	var out [8]byte
	binary.BigEndian.PutUint64(out[:], crc64nvme.Checksum(b))
	return base64.StdEncoding.EncodeToString(out[:])
}
