package api_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/crc64nvme"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/store"
	"spillway/store/dirstore"
	"spillway/store/storetest"
	"spillway/wire"
)

// The /uploads routes run against two stores: a small in-memory fake, and
// the real directory store.

var (
	_ store.Multipart  = (*dirstore.Store)(nil)
	_ store.PartWriter = (*dirstore.Store)(nil)
)

var testSecret = []byte("upload-secret-for-the-api-tests")

// backend opens a store for one test server and reports the uploads it
// holds, so that a test can check a refusal created none.
type backend struct {
	name string
	open func(t *testing.T) (st store.Store, uploads func(t *testing.T) []string)
}

var fakeBackend = backend{name: "fake", open: func(*testing.T) (store.Store, func(*testing.T) []string) {
	f := newFakeStore()
	return f, func(*testing.T) []string { return f.uploadIDs() }
}}

var dirBackend = backend{name: "dirstore", open: func(t *testing.T) (store.Store, func(*testing.T) []string) {
	dir := filepath.Join(t.TempDir(), "uploads")
	st, _, err := dirstore.Open(dir, dirstore.Options{Fsync: true})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st, func(t *testing.T) []string {
		t.Helper()
		entries, err := os.ReadDir(filepath.Join(dir, ".spillway-uploads"))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		require.NoError(t, err)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
}}

// forEachBackend runs test once per backend.
func forEachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	for _, b := range []backend{fakeBackend, dirBackend} {
		t.Run(b.name, func(t *testing.T) { test(t, b) })
	}
}

type upOptions struct {
	token      string
	maxSize    int64
	maxUploads int
	observer   api.Observer
	wrap       func(store.Store) store.Store
}

type upServer struct {
	*server
	token   string
	uploads func(t *testing.T) []string
}

func newUploadServer(t *testing.T, b backend, o upOptions) *upServer {
	t.Helper()
	s := &server{spoolDir: t.TempDir(), logs: &uploadtest.SyncBuffer{}, served: make(chan int, 1024)}
	cfg := spool.DefaultConfig()
	cfg.Dir, cfg.MaxSize = s.spoolDir, o.maxSize
	var err error
	s.spooler, err = spool.New(cfg)
	require.NoError(t, err)
	st, uploads := b.open(t)
	if o.wrap != nil {
		st = o.wrap(st)
	}
	h := api.New(api.Config{
		Spooler:              s.spooler,
		Store:                st,
		Logger:               slog.New(slog.NewJSONHandler(s.logs, nil)),
		Token:                o.token,
		MaxConcurrentUploads: o.maxUploads,
		Observer:             o.observer,
		UploadSecret:         testSecret,
	})
	s.start(t, h)
	return &upServer{server: s, token: o.token, uploads: uploads}
}

// call sends a request with the token, waits for the handler to finish,
// and checks that the spool is empty again.
func (s *upServer) call(t *testing.T, method, path string, body io.Reader, length int64) (*http.Response, []byte) {
	t.Helper()
	req := s.request(t, method, path, body, length)
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	return s.finish(t, req)
}

func (s *upServer) finish(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, body := s.do(t, req)
	s.waitServed(t)
	uploadtest.RequireEmptyDir(t, s.spoolDir)
	return resp, body
}

func (s *upServer) callJSON(t *testing.T, method, path string, v any) (*http.Response, []byte) {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	return s.call(t, method, path, bytes.NewReader(data), int64(len(data)))
}

func (s *upServer) create(t *testing.T, f uploadtest.File, sum string) wire.CreatedUpload {
	t.Helper()
	return s.createReq(t, wire.CreateUploadRequest{Name: f.Name, Size: f.Size, SHA256: sum})
}

func (s *upServer) createReq(t *testing.T, cr wire.CreateUploadRequest) wire.CreatedUpload {
	t.Helper()
	resp, body := s.callJSON(t, http.MethodPost, "/uploads", cr)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	var got wire.CreatedUpload
	require.NoError(t, json.Unmarshal(body, &got))
	assert.Equal(t, "/uploads/"+got.ID, resp.Header.Get("Location"))
	return got
}

// putPart sends part n of f to its URL, without the token.
func (s *upServer) putPart(t *testing.T, pu wire.PartURL, f uploadtest.File) (*http.Response, []byte) {
	t.Helper()
	data := partBytes(f, pu)
	req, err := http.NewRequestWithContext(t.Context(), pu.Method, pu.URL, bytes.NewReader(data))
	require.NoError(t, err)
	return s.finish(t, req)
}

func (s *upServer) sendPart(t *testing.T, pu wire.PartURL, f uploadtest.File) wire.Part {
	t.Helper()
	resp, body := s.putPart(t, pu, f)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var p wire.Part
	require.NoError(t, json.Unmarshal(body, &p))
	assert.Equal(t, pu.Number, p.Number)
	assert.Equal(t, pu.Size, p.Size)
	assert.Equal(t, resp.Header.Get("ETag"), p.ETag)
	return p
}

func (s *upServer) complete(t *testing.T, id string, parts ...wire.Part) (*http.Response, []byte) {
	t.Helper()
	req := wire.CompleteRequest{Parts: []wire.CompletePart{}}
	for _, p := range parts {
		req.Parts = append(req.Parts, wire.CompletePart{Number: p.Number, ETag: p.ETag})
	}
	return s.callJSON(t, http.MethodPost, "/uploads/"+id+"/complete", req)
}

func partBytes(f uploadtest.File, pu wire.PartURL) []byte {
	all := f.Bytes()
	off := int64(pu.Number-1) * store.PartSizeFor(f.Size)
	return all[off : off+pu.Size]
}

// putData sends data to a part URL, without the token.
func (s *upServer) putData(t *testing.T, pu wire.PartURL, data []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), pu.Method, pu.URL, bytes.NewReader(data))
	require.NoError(t, err)
	return s.finish(t, req)
}

// forge signs a part URL the way the handler does, with the test secret,
// for URLs the handler would never hand out (expired, unknown upload).
func forge(base, id string, n int, expires int64) string {
	m := hmac.New(sha256.New, testSecret)
	fmt.Fprintf(m, "PUT\n%s\n%d\n%d", id, n, expires)
	return fmt.Sprintf("%s/uploads/%s/parts/%d?expires=%d&sig=%x", base, id, n, expires, m.Sum(nil))
}

// The documented flow: create, parts out of order with one sent again,
// status, complete, download.
func TestUploadsFullFlow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		obs := &recordingObserver{}
		s := newUploadServer(t, b, upOptions{token: "s3cret", observer: obs})
		f := uploadtest.File{Name: "isos/big.iso", Seed: 7, Size: 2*store.DefaultPartSize + 1}
		crc := storetest.CRC64NVME(f)
		up := s.createReq(t, wire.CreateUploadRequest{Name: f.Name, Size: f.Size, SHA256: strings.ToUpper(f.SHA256()), CRC64NVME: crc})
		assert.Equal(t, crc, up.CRC64NVME)
		assert.Equal(t, f.Name, up.Name)
		assert.Equal(t, f.Size, up.Size)
		assert.Equal(t, f.SHA256(), up.SHA256, "the digest is kept in lower case")
		assert.Equal(t, int64(store.DefaultPartSize), up.PartSize)
		require.Equal(t, 3, up.PartCount)
		require.Len(t, up.Parts, 3)
		assert.Zero(t, up.NextFrom)
		for i, pu := range up.Parts {
			assert.Equal(t, i+1, pu.Number)
			assert.Equal(t, http.MethodPut, pu.Method)
			assert.True(t, strings.HasPrefix(pu.URL, s.URL+"/uploads/"+up.ID+"/parts/"), pu.URL)
			assert.WithinDuration(t, time.Now().Add(api.DefaultPartURLTTL), pu.Expires, 5*time.Second)
		}
		assert.Equal(t, []int64{store.DefaultPartSize, store.DefaultPartSize, 1}, []int64{up.Parts[0].Size, up.Parts[1].Size, up.Parts[2].Size})

		// Part 1 first with the wrong bytes, then again with the right ones:
		// the second replaces the first.
		wrong := uploadtest.File{Name: f.Name, Seed: 8, Size: f.Size}
		stale := s.sendPart(t, up.Parts[0], wrong)
		p3 := s.sendPart(t, up.Parts[2], f)
		p1 := s.sendPart(t, up.Parts[0], f)
		assert.NotEqual(t, stale.ETag, p1.ETag)

		resp, body := s.call(t, http.MethodGet, "/uploads/"+up.ID, nil, 0)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var state wire.UploadState
		require.NoError(t, json.Unmarshal(body, &state))
		assert.Equal(t, up.UploadInfo, state.UploadInfo)
		assert.Equal(t, []wire.Part{p1, p3}, state.Received)

		p2 := s.sendPart(t, up.Parts[1], f)
		resp, body = s.complete(t, up.ID, stale, p2, p3)
		requireError(t, resp, body, http.StatusBadRequest, "upload_mismatch")
		resp, body = s.complete(t, up.ID, p1, p2, p3)
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
		assert.Equal(t, "/files/isos/big.iso", resp.Header.Get("Location"))
		var got wire.UploadResponse
		require.NoError(t, json.Unmarshal(body, &got))
		assert.Equal(t, wire.UploadResponse{Files: []wire.FileResult{{Name: f.Name, Size: f.Size, SHA256: f.SHA256(), CRC64NVME: crc, Spool: "parts"}}}, got)

		resp, body = s.call(t, http.MethodGet, "/files/isos/big.iso", nil, 0)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		uploadtest.RequireContent(t, f, bytes.NewReader(body))
		assert.Empty(t, s.uploads(t), "a completed upload is forgotten")
		resp, body = s.call(t, http.MethodGet, "/uploads/"+up.ID, nil, 0)
		requireError(t, resp, body, http.StatusNotFound, "upload_not_found")

		// Metrics see four part uploads and one completed file.
		obs.mu.Lock()
		defer obs.mu.Unlock()
		var parts, completions int
		for _, o := range obs.outcomes {
			switch {
			case o.Method == http.MethodPut:
				assert.True(t, o.Upload)
				assert.Contains(t, []wire.Spool{wire.SpoolMemory, wire.SpoolDisk}, o.Spool)
				assert.Zero(t, o.Files)
				parts++
			case o.Upload && o.Code == "":
				assert.Equal(t, wire.SpoolParts, o.Spool)
				assert.Equal(t, 1, o.Files)
				assert.Equal(t, f.Size, o.BytesStored)
				completions++
			}
		}
		assert.Equal(t, 4, parts)
		assert.Equal(t, 1, completions)
		assert.Zero(t, obs.inFlight)
		assert.Contains(t, s.logs.String(), `"spool":"parts"`)
	})
}

// Every refusal of POST /uploads comes before anything is created, in the
// documented order: a request wrong in two ways gets the earlier error.
func TestCreateUploadRefusals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		// Over the free space of any test machine, and under the largest
		// upload that parts can cover.
		const limit = 40 << 40
		s := newUploadServer(t, b, upOptions{token: "s3cret", maxSize: limit})
		taken := uploadtest.File{Name: "taken.bin", Seed: 1, Size: 10}
		resp, body := s.call(t, http.MethodPut, "/files/taken.bin", taken.Reader(), taken.Size)
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
		sum := strings.Repeat("ab", 32)

		cases := []struct {
			name   string
			body   string
			status int
			code   string
		}{
			{"not JSON", `{"name":`, 400, "bad_request"},
			{"unknown field", `{"name":"a.bin","size":1,"overwrite":true}`, 400, "bad_request"},
			{"trailing data", `{"name":"a.bin","size":1} {}`, 400, "bad_request"},
			{"empty body", ``, 400, "bad_request"},
			{"wrong type before bad name", `{"name":"../a","size":"big"}`, 400, "bad_request"},
			{"bad name before bad size", `{"name":"../a","size":0}`, 400, "invalid_name"},
			{"hidden name", `{"name":".env","size":1}`, 400, "invalid_name"},
			{"no name", `{"size":1}`, 400, "invalid_name"},
			{"zero size", `{"name":"a.bin","size":0}`, 400, "bad_request"},
			{"negative size", `{"name":"a.bin","size":-1}`, 400, "bad_request"},
			{"over the limit before taken", fmt.Sprintf(`{"name":"taken.bin","size":%d}`, limit+1), 413, "too_large"},
			{"taken before bad sha256", `{"name":"taken.bin","size":5,"sha256":"xyz"}`, 409, "exists"},
			{"no space before bad sha256", fmt.Sprintf(`{"name":"huge.bin","size":%d,"sha256":"xyz"}`, limit), 507, "insufficient_storage"},
			{"sha256 not hex", `{"name":"a.bin","size":5,"sha256":"` + strings.Repeat("zz", 32) + `"}`, 400, "bad_request"},
			{"sha256 too short", `{"name":"a.bin","size":5,"sha256":"` + sum[:63] + `"}`, 400, "bad_request"},
			{"crc64nvme not base64", `{"name":"a.bin","size":5,"crc64nvme":"not base64!"}`, 400, "bad_request"},
			{"crc64nvme of 4 bytes", `{"name":"a.bin","size":5,"crc64nvme":"AAAAAA=="}`, 400, "bad_request"},
			{"crc64nvme as a number", `{"name":"a.bin","size":5,"crc64nvme":12345}`, 400, "bad_request"},
			{"crc64nvme in hex", `{"name":"a.bin","size":5,"crc64nvme":"ae8b14860a799888"}`, 400, "bad_request"},
			{"taken before bad crc64nvme", `{"name":"taken.bin","size":5,"crc64nvme":"x"}`, 409, "exists"},
			{"part_size under 5 MiB", `{"name":"a.bin","size":5,"part_size":1}`, 400, "bad_request"},
			{"part_size over 5 GiB", fmt.Sprintf(`{"name":"a.bin","size":5,"part_size":%d}`, int64(5<<30)+1), 400, "bad_request"},
			{"part_size making over 10000 parts", fmt.Sprintf(`{"name":"a.bin","size":%d,"part_size":%d}`, int64(5<<20)*10001, 5<<20), 400, "bad_request"},
			{"part_crc64nvme one too many", `{"name":"a.bin","size":5,"part_crc64nvme":["rosUhgp5mIg=","rosUhgp5mIg="]}`, 400, "bad_request"},
			{"part_crc64nvme none for a part", `{"name":"a.bin","size":5,"part_crc64nvme":[]}`, 400, "bad_request"},
			{"part_crc64nvme not base64", `{"name":"a.bin","size":5,"part_crc64nvme":["x"]}`, 400, "bad_request"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := s.call(t, http.MethodPost, "/uploads", strings.NewReader(tc.body), int64(len(tc.body)))
				requireError(t, resp, body, tc.status, tc.code)
				assert.Empty(t, s.uploads(t), "a refused request created an upload")
			})
		}
		t.Run("no token before bad JSON", func(t *testing.T) {
			resp, body := s.do(t, s.request(t, http.MethodPost, "/uploads", strings.NewReader("{"), 1))
			s.waitServed(t)
			requireError(t, resp, body, 401, "unauthorized")
		})
		t.Run("JSON over 256 KiB", func(t *testing.T) {
			big := `{"name":"a.bin","size":1,"sha256":"` + strings.Repeat(" ", 256<<10) + `"}`
			body := &trackingReader{r: strings.NewReader(big)}
			req := s.request(t, http.MethodPost, "/uploads", body, int64(len(big)))
			req.Header.Set("Authorization", "Bearer s3cret")
			req.Header.Set("Expect", "100-continue")
			resp, respBody := s.finish(t, req)
			requireError(t, resp, respBody, 413, "too_large")
			assert.False(t, body.read.Load(), "a body declared too large was read")

			// Without a length, it is cut off at the cap.
			req = s.request(t, http.MethodPost, "/uploads", io.MultiReader(strings.NewReader(big)), -1)
			req.Header.Set("Authorization", "Bearer s3cret")
			resp, respBody = s.finish(t, req)
			requireError(t, resp, respBody, 413, "too_large")
		})
		assert.Empty(t, s.uploads(t))
		uploadtest.RequireEmptyDir(t, s.spoolDir)
	})
}

func TestPartURLRefusals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := newUploadServer(t, b, upOptions{token: "s3cret"})
		f := uploadtest.File{Name: "two.bin", Seed: 3, Size: store.DefaultPartSize + 10}
		up := s.create(t, f, "")
		good := up.Parts[1]
		require.Equal(t, int64(10), good.Size)

		u, err := url.Parse(good.URL)
		require.NoError(t, err)
		q := u.Query()
		sig := q.Get("sig")
		flipped := strings.Map(func(r rune) rune {
			if r == '0' {
				return '1'
			}
			return '0'
		}, sig[:1]) + sig[1:]
		with := func(path string, set map[string]string) string {
			v := u.Query()
			for k, x := range set {
				if x == "" {
					v.Del(k)
				} else {
					v.Set(k, x)
				}
			}
			return s.URL + path + "?" + v.Encode()
		}
		past := time.Now().Add(-time.Minute).Unix()
		cases := []struct {
			name, url string
			length    int64
			status    int
			code      string
		}{
			{"tampered signature", with(u.Path, map[string]string{"sig": flipped}), 10, 403, "bad_signature"},
			{"no signature", with(u.Path, map[string]string{"sig": ""}), 10, 403, "bad_signature"},
			{"signature not hex", with(u.Path, map[string]string{"sig": "xyz"}), 10, 403, "bad_signature"},
			{"later expiry", with(u.Path, map[string]string{"expires": strconv.FormatInt(time.Now().Add(48*time.Hour).Unix(), 10)}), 10, 403, "bad_signature"},
			{"another part", with("/uploads/"+up.ID+"/parts/1", nil), 10, 403, "bad_signature"},
			{"another upload", with("/uploads/other/parts/2", nil), 10, 403, "bad_signature"},
			{"not a part number", with("/uploads/"+up.ID+"/parts/two", nil), 10, 403, "bad_signature"},
			{"expired", forge(s.URL, up.ID, 2, past), 10, 403, "bad_signature"},
			{"unknown upload", forge(s.URL, "nope", 1, time.Now().Add(time.Hour).Unix()), 10, 404, "upload_not_found"},
			{"no such part", forge(s.URL, up.ID, 3, time.Now().Add(time.Hour).Unix()), 10, 400, "upload_mismatch"},
			{"wrong size", good.URL, 11, 400, "upload_mismatch"},
			{"too short", good.URL, 9, 400, "upload_mismatch"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				body := &trackingReader{r: uploadtest.File{Size: tc.length}.Reader()}
				req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, tc.url, body)
				require.NoError(t, err)
				req.ContentLength = tc.length
				req.Header.Set("Expect", "100-continue")
				resp, respBody := s.finish(t, req)
				requireError(t, resp, respBody, tc.status, tc.code)
				assert.False(t, body.read.Load(), "the client was asked for the body")
			})
		}

		// A chunked body is measured as it arrives.
		for _, n := range []int64{9, 11, 100 << 10} {
			t.Run(fmt.Sprintf("chunked %d bytes", n), func(t *testing.T) {
				req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, good.URL, io.MultiReader(uploadtest.File{Size: n}.Reader()))
				require.NoError(t, err)
				req.ContentLength = -1
				resp, body := s.finish(t, req)
				requireError(t, resp, body, 400, "upload_mismatch")
			})
		}
		t.Run("chunked, right size", func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, good.URL, io.MultiReader(bytes.NewReader(partBytes(f, good))))
			require.NoError(t, err)
			req.ContentLength = -1
			resp, body := s.finish(t, req)
			require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		})

		// On the wire: no "100 Continue" for a bad signature.
		conn, br := s.rawRequest(t, fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
			strings.TrimPrefix(with(u.Path, map[string]string{"sig": flipped}), s.URL)), nil)
		defer conn.Close()
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		requireError(t, resp, body, http.StatusForbidden, "bad_signature")
		s.waitServed(t)

		// The part URL needs no token, but nothing else does without it.
		s.sendPart(t, good, f)
		for _, r := range []struct{ method, path string }{
			{http.MethodPost, "/uploads"},
			{http.MethodGet, "/uploads/" + up.ID},
			{http.MethodGet, "/uploads/" + up.ID + "/parts"},
			{http.MethodPost, "/uploads/" + up.ID + "/complete"},
			{http.MethodDelete, "/uploads/" + up.ID},
			{http.MethodGet, "/uploads/" + up.ID + "/parts/1"},
		} {
			resp, body := s.finish(t, s.request(t, r.method, r.path, nil, 0))
			requireError(t, resp, body, http.StatusUnauthorized, "unauthorized")
		}
		resp, body = s.call(t, http.MethodGet, "/uploads/"+up.ID, nil, 0)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		resp, body = s.call(t, http.MethodGet, "/uploads/"+up.ID+"/parts/1", nil, 0)
		requireError(t, resp, body, http.StatusMethodNotAllowed, "method_not_allowed")
		assert.Equal(t, "PUT", resp.Header.Get("Allow"))
	})
}

// A completion that lacks a part keeps the upload: send it and complete.
func TestCompleteMissingPartThenSuccess(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := newUploadServer(t, b, upOptions{})
		f := uploadtest.File{Name: "resume.bin", Seed: 4, Size: store.DefaultPartSize + 100}
		up := s.create(t, f, f.SHA256())
		p1 := s.sendPart(t, up.Parts[0], f)

		resp, body := s.complete(t, up.ID, p1)
		requireError(t, resp, body, http.StatusBadRequest, "upload_mismatch")
		resp, body = s.complete(t, up.ID, p1, wire.Part{Number: 2, ETag: `"made-up"`})
		requireError(t, resp, body, http.StatusBadRequest, "upload_mismatch")
		resp, body = s.complete(t, up.ID)
		requireError(t, resp, body, http.StatusBadRequest, "upload_mismatch")

		resp, body = s.call(t, http.MethodGet, "/uploads/"+up.ID, nil, 0)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var state wire.UploadState
		require.NoError(t, json.Unmarshal(body, &state))
		require.Equal(t, []wire.Part{p1}, state.Received)

		p2 := s.sendPart(t, up.Parts[1], f)
		resp, body = s.complete(t, up.ID, p1, p2)
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
		resp, body = s.call(t, http.MethodGet, "/files/resume.bin", nil, 0)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		uploadtest.RequireContent(t, f, bytes.NewReader(body))
	})
}

func TestCompleteBadChecksumStoresNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		for name, other := range map[string]wire.CreateUploadRequest{
			"sha256":    {SHA256: uploadtest.File{Seed: 6, Size: 1000}.SHA256()},
			"crc64nvme": {CRC64NVME: storetest.CRC64NVME(uploadtest.File{Seed: 6, Size: 1000})},
		} {
			t.Run(name, func(t *testing.T) { testCompleteBadChecksum(t, b, other) })
		}
	})
}

// A declared part checksum is checked when the part arrives: other bytes
// are 400 bad_checksum, and the upload stays for the part to be sent again.
// Every part of the largest upload has room for its checksum in a create.
func TestPartChecksumIsCheckedOnArrival(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := newUploadServer(t, b, upOptions{})
		f := uploadtest.File{Name: "parts.bin", Seed: 9, Size: 2*store.MinPartSize + 100}
		data := f.Bytes()
		var crcs []string
		for off := int64(0); off < f.Size; off += store.MinPartSize {
			crcs = append(crcs, store.EncodeCRC64NVME(crc64nvme.Checksum(data[off:min(off+store.MinPartSize, f.Size)])))
		}
		up := s.createReq(t, wire.CreateUploadRequest{Name: f.Name, Size: f.Size, CRC64NVME: storetest.CRC64NVME(f),
			PartSize: store.MinPartSize, PartCRC64NVME: crcs})
		require.Equal(t, int64(store.MinPartSize), up.PartSize)
		require.Equal(t, 3, up.PartCount)

		part := func(n int) []byte {
			off := int64(n-1) * store.MinPartSize
			return data[off:min(off+store.MinPartSize, f.Size)]
		}
		wrong := bytes.Clone(part(2))
		wrong[100] ^= 1
		resp, body := s.putData(t, up.Parts[1], wrong)
		requireError(t, resp, body, http.StatusBadRequest, "bad_checksum")
		resp, body = s.call(t, http.MethodGet, "/uploads/"+up.ID, nil, 0)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var state wire.UploadState
		require.NoError(t, json.Unmarshal(body, &state))
		assert.Empty(t, state.Received, "the part refused is not kept")

		var parts []wire.Part
		for _, pu := range up.Parts {
			resp, body := s.putData(t, pu, part(pu.Number))
			require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
			var p wire.Part
			require.NoError(t, json.Unmarshal(body, &p))
			parts = append(parts, p)
		}
		resp, body = s.complete(t, up.ID, parts...)
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	})

	t.Run("the largest create fits", func(t *testing.T) {
		crcs := make([]string, store.MaxPartCount)
		for i := range crcs {
			crcs[i] = "rosUhgp5mIg="
		}
		cr := wire.CreateUploadRequest{Name: "a-long-name/" + strings.Repeat("n", 200), Size: store.MaxPartCount * store.MinPartSize,
			SHA256: strings.Repeat("ab", 32), CRC64NVME: "rosUhgp5mIg=", PartSize: store.MinPartSize, PartCRC64NVME: crcs}
		b, err := json.Marshal(cr)
		require.NoError(t, err)
		assert.Less(t, len(b), 256<<10)
	})
}

func testCompleteBadChecksum(t *testing.T, b backend, declared wire.CreateUploadRequest) {
	{
		s := newUploadServer(t, b, upOptions{})
		f := uploadtest.File{Name: "sum.bin", Seed: 5, Size: 1000}
		declared.Name, declared.Size = f.Name, f.Size
		up := s.createReq(t, declared)
		p := s.sendPart(t, up.Parts[0], f)
		resp, body := s.complete(t, up.ID, p)
		requireError(t, resp, body, http.StatusBadRequest, "bad_checksum")

		resp, body = s.call(t, http.MethodGet, "/files/sum.bin", nil, 0)
		requireError(t, resp, body, http.StatusNotFound, "not_found")
		resp, body = s.call(t, http.MethodGet, "/files", nil, 0)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.JSONEq(t, `{"files":[]}`, string(body))
		resp, body = s.call(t, http.MethodGet, "/uploads/"+up.ID, nil, 0)
		requireError(t, resp, body, http.StatusNotFound, "upload_not_found")
		assert.Empty(t, s.uploads(t))
	}
}

func TestCompleteNameTakenMeanwhile(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := newUploadServer(t, b, upOptions{})
		f := uploadtest.File{Name: "race.bin", Seed: 5, Size: 1000}
		up := s.create(t, f, "")
		p := s.sendPart(t, up.Parts[0], f)
		resp, body := s.call(t, http.MethodPut, "/files/race.bin", strings.NewReader("first"), 5)
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
		resp, body = s.complete(t, up.ID, p)
		requireError(t, resp, body, http.StatusConflict, "exists")
		resp, body = s.call(t, http.MethodGet, "/files/race.bin", nil, 0)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "first", string(body))
		assert.Empty(t, s.uploads(t))
	})
}

func TestAbortAndUnknownUploads(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := newUploadServer(t, b, upOptions{})
		f := uploadtest.File{Name: "gone.bin", Seed: 9, Size: 100}
		up := s.create(t, f, "")
		s.sendPart(t, up.Parts[0], f)
		require.NotEmpty(t, s.uploads(t))

		resp, body := s.call(t, http.MethodDelete, "/uploads/"+up.ID, nil, 0)
		require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
		assert.Empty(t, body)
		assert.Empty(t, s.uploads(t), "an aborted upload keeps nothing")
		resp, body = s.putPart(t, up.Parts[0], f)
		requireError(t, resp, body, http.StatusNotFound, "upload_not_found")

		for _, id := range []string{up.ID, "never-created", "a%2Fb", "..", "%2E%2E", "a%00b", strings.Repeat("x", 1000)} {
			for _, r := range []struct{ method, path string }{
				{http.MethodGet, "/uploads/" + id},
				{http.MethodGet, "/uploads/" + id + "/parts"},
				{http.MethodPost, "/uploads/" + id + "/complete"},
				{http.MethodDelete, "/uploads/" + id},
			} {
				body := `{"parts":[]}`
				resp, respBody := s.call(t, r.method, r.path, strings.NewReader(body), int64(len(body)))
				requireError(t, resp, respBody, http.StatusNotFound, "upload_not_found")
			}
		}
		resp, body = s.call(t, http.MethodGet, "/uploads/x/elsewhere", nil, 0)
		requireError(t, resp, body, http.StatusNotFound, "not_found")
		resp, body = s.call(t, http.MethodGet, "/uploads", nil, 0)
		requireError(t, resp, body, http.StatusMethodNotAllowed, "method_not_allowed")
		assert.Equal(t, "POST", resp.Header.Get("Allow"))
	})
}

// 10,000 parts (about 156 GiB) come in pages of 500.
func TestPartURLPages(t *testing.T) {
	s := newUploadServer(t, fakeBackend, upOptions{})
	size := int64(store.MaxPartCount)*store.DefaultPartSize + 1
	f := uploadtest.File{Name: "huge.bin", Size: size}
	up := s.create(t, f, "")
	partSize := store.PartSizeFor(size)
	require.Greater(t, partSize, int64(store.DefaultPartSize))
	require.Equal(t, int((size+partSize-1)/partSize), up.PartCount)
	require.Len(t, up.Parts, 500)
	require.Equal(t, 501, up.NextFrom)

	seen := len(up.Parts)
	for from := up.NextFrom; from != 0; {
		resp, body := s.call(t, http.MethodGet, fmt.Sprintf("/uploads/%s/parts?from=%d", up.ID, from), nil, 0)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var page wire.PartURLPage
		require.NoError(t, json.Unmarshal(body, &page))
		require.NotEmpty(t, page.Parts)
		require.Equal(t, from, page.Parts[0].Number)
		seen += len(page.Parts)
		from = page.NextFrom
		if from == 0 {
			last := page.Parts[len(page.Parts)-1]
			assert.Equal(t, up.PartCount, last.Number)
			assert.Equal(t, size-int64(up.PartCount-1)*partSize, last.Size)
		}
	}
	assert.Equal(t, up.PartCount, seen)

	resp, body := s.call(t, http.MethodGet, fmt.Sprintf("/uploads/%s/parts?from=%d", up.ID, up.PartCount+1), nil, 0)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"parts":[],"next_from":0}`, string(body))
	for _, from := range []string{"0", "-1", "x"} {
		resp, body := s.call(t, http.MethodGet, "/uploads/"+up.ID+"/parts?from="+from, nil, 0)
		requireError(t, resp, body, http.StatusBadRequest, "bad_request")
	}

	// The URLs name the host and scheme the client used.
	req := s.request(t, http.MethodGet, "/uploads/"+up.ID+"/parts?from=7", nil, 0)
	req.Host = "uploads.example:8443"
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, body = s.finish(t, req)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var page wire.PartURLPage
	require.NoError(t, json.Unmarshal(body, &page))
	assert.True(t, strings.HasPrefix(page.Parts[0].URL, "https://uploads.example:8443/uploads/"+up.ID+"/parts/7?"), page.Parts[0].URL)
}

func TestCompleteBodyIsCapped(t *testing.T) {
	s := newUploadServer(t, fakeBackend, upOptions{})
	up := s.create(t, uploadtest.File{Name: "a.bin", Size: 1}, "")
	body := &trackingReader{r: strings.NewReader("")}
	req := s.request(t, http.MethodPost, "/uploads/"+up.ID+"/complete", body, 3<<20)
	req.Header.Set("Expect", "100-continue")
	resp, respBody := s.finish(t, req)
	requireError(t, resp, respBody, http.StatusRequestEntityTooLarge, "too_large")
	assert.False(t, body.read.Load())

	extra := `{"parts":[],"extra":1}`
	resp, respBody = s.call(t, http.MethodPost, "/uploads/"+up.ID+"/complete", strings.NewReader(extra), int64(len(extra)))
	requireError(t, resp, respBody, http.StatusBadRequest, "bad_request")
}

// A part PUT is an upload: it takes one of the upload slots.
func TestPartPutTakesAnUploadSlot(t *testing.T) {
	s := newUploadServer(t, fakeBackend, upOptions{maxUploads: 1})
	f := uploadtest.File{Name: "slot.bin", Seed: 1, Size: 100}
	up := s.create(t, f, "")
	finish := s.putContinued(t, uploadtest.File{Name: "held.bin", Size: 10})

	resp, body := s.putPart(t, up.Parts[0], f)
	requireError(t, resp, body, http.StatusServiceUnavailable, "busy")
	resp, body = s.complete(t, up.ID)
	requireError(t, resp, body, http.StatusServiceUnavailable, "busy")

	finish()
	s.sendPart(t, up.Parts[0], f)
}

// presigningStore is the fake as S3 would be: it presigns part URLs and
// writes no parts through the handler.
type presigningStore struct {
	store.Store
	store.Multipart
}

func (p presigningStore) Capabilities() store.Caps {
	return store.Caps{Multipart: p.Multipart, PartPresigner: p}
}

func (presigningStore) PresignPart(_ context.Context, u store.Upload, n int, ttl time.Duration) (store.PartURL, error) {
	return store.PartURL{
		Number: n, Size: u.PartSizeOf(n), Method: http.MethodPut,
		URL:     fmt.Sprintf("https://bucket.example/%s?partNumber=%d", u.ID, n),
		Header:  map[string]string{"x-amz-checksum-sha256": "…"},
		Expires: time.Now().Add(ttl),
	}, nil
}

func TestPresignedPartURLs(t *testing.T) {
	fake := fakeBackend
	s := newUploadServer(t, fake, upOptions{wrap: func(st store.Store) store.Store {
		return presigningStore{Store: st, Multipart: st.Capabilities().Multipart}
	}})
	up := s.create(t, uploadtest.File{Name: "s3.bin", Size: 2*store.DefaultPartSize + 1}, "")
	require.Len(t, up.Parts, 3)
	assert.Equal(t, "https://bucket.example/"+up.ID+"?partNumber=3", up.Parts[2].URL)
	assert.Equal(t, int64(1), up.Parts[2].Size)
	assert.Equal(t, map[string]string{"x-amz-checksum-sha256": "…"}, up.Parts[2].Headers)
	// The handler takes no parts itself.
	resp, body := s.call(t, http.MethodPut, "/uploads/"+up.ID+"/parts/1", strings.NewReader("x"), 1)
	requireError(t, resp, body, http.StatusNotFound, "not_found")
	resp, body = s.finish(t, s.request(t, http.MethodPut, forge("", up.ID, 1, time.Now().Add(time.Hour).Unix()), strings.NewReader("x"), 1))
	requireError(t, resp, body, http.StatusNotFound, "not_found")
}

func TestUploadsNeedAMultipartStore(t *testing.T) {
	s := newUploadServer(t, fakeBackend, upOptions{token: "t", wrap: func(st store.Store) store.Store {
		return withoutCaps{st}
	}})
	for _, r := range []struct{ method, path string }{
		{http.MethodPost, "/uploads"},
		{http.MethodGet, "/uploads/x"},
		{http.MethodPut, "/uploads/x/parts/1"},
	} {
		resp, body := s.call(t, r.method, r.path, nil, 0)
		requireError(t, resp, body, http.StatusNotImplemented, "multipart_unsupported")
	}
	resp, body := s.finish(t, s.request(t, http.MethodPut, "/uploads/x/parts/1", nil, 0))
	requireError(t, resp, body, http.StatusUnauthorized, "unauthorized")
}

// withoutCaps is a store that says it has no optional feature, whatever
// the store it wraps has.
type withoutCaps struct{ store.Store }

func (withoutCaps) Capabilities() store.Caps { return store.Caps{} }

// fakeStore keeps files and uploads in memory.
type fakeStore struct {
	mu      sync.Mutex
	files   map[string][]byte
	uploads map[string]*fakeUpload
	space   int64
}

type fakeUpload struct {
	u     store.Upload
	parts map[int][]byte
}

func newFakeStore() *fakeStore {
	return &fakeStore{files: map[string][]byte{}, uploads: map[string]*fakeUpload{}, space: 1 << 39}
}

var (
	_ store.Multipart  = (*fakeStore)(nil)
	_ store.PartWriter = (*fakeStore)(nil)
)

func (f *fakeStore) Capabilities() store.Caps {
	return store.Caps{Multipart: f, PartWriter: f}
}

func (f *fakeStore) uploadIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(func(yield func(string) bool) {
		for id := range f.uploads {
			if !yield(id) {
				return
			}
		}
	})
}

func etagOf(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}

func (f *fakeStore) Check(_ context.Context, name string, size int64) error {
	if err := store.ValidateName(name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.files[name]; ok {
		return fmt.Errorf("%w: %q", store.ErrExists, name)
	}
	if size > f.space {
		return fmt.Errorf("%w: %d bytes", store.ErrInsufficientStorage, size)
	}
	return nil
}

func (f *fakeStore) Put(_ context.Context, files []store.File) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, file := range files {
		if _, ok := f.files[file.Name]; ok {
			return fmt.Errorf("%w: %q", store.ErrExists, file.Name)
		}
	}
	for _, file := range files {
		b, err := io.ReadAll(file.Body.Reader())
		if err != nil {
			return err
		}
		f.files[file.Name] = b
	}
	return nil
}

func (f *fakeStore) List(_ context.Context, opts store.ListOptions) ([]store.Info, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	infos := []store.Info{}
	for name, b := range f.files {
		if strings.HasPrefix(name, opts.Prefix) && name > opts.After {
			infos = append(infos, store.Info{Name: name, Size: int64(len(b))})
		}
	}
	slices.SortFunc(infos, func(a, b store.Info) int { return strings.Compare(a.Name, b.Name) })
	if len(infos) > opts.PageLimit() {
		return infos[:opts.PageLimit()], true, nil
	}
	return infos, false, nil
}

type nopSeekCloser struct{ *bytes.Reader }

func (nopSeekCloser) Close() error { return nil }

func (f *fakeStore) Open(_ context.Context, name string) (store.Info, io.ReadSeekCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.files[name]
	if !ok {
		return store.Info{}, nil, fmt.Errorf("%w: %q", store.ErrNotFound, name)
	}
	return store.Info{Name: name, Size: int64(len(b)), ETag: etagOf(b)}, nopSeekCloser{bytes.NewReader(b)}, nil
}

func (f *fakeStore) Stat(ctx context.Context, name string) (store.Info, error) {
	info, _, err := f.Open(ctx, name)
	return info, err
}

func (f *fakeStore) Delete(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.files[name]; !ok {
		return fmt.Errorf("%w: %q", store.ErrNotFound, name)
	}
	delete(f.files, name)
	return nil
}

func (f *fakeStore) CreateUpload(_ context.Context, u store.Upload) (store.Upload, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u.ID, u.Created = store.NewUploadID(), time.Now()
	f.uploads[u.ID] = &fakeUpload{u: u, parts: map[int][]byte{}}
	return u, nil
}

// get returns the upload; f.mu is held.
func (f *fakeStore) get(id string) (*fakeUpload, error) {
	up, ok := f.uploads[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", store.ErrUploadNotFound, id)
	}
	return up, nil
}

func (f *fakeStore) Upload(_ context.Context, id string) (store.Upload, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	up, err := f.get(id)
	if err != nil {
		return store.Upload{}, err
	}
	return up.u, nil
}

func (f *fakeStore) ListParts(_ context.Context, id string) ([]store.Part, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	up, err := f.get(id)
	if err != nil {
		return nil, err
	}
	var parts []store.Part
	for n, b := range up.parts {
		parts = append(parts, store.Part{Number: n, Size: int64(len(b)), ETag: etagOf(b)})
	}
	slices.SortFunc(parts, func(a, b store.Part) int { return a.Number - b.Number })
	return parts, nil
}

func (f *fakeStore) PutPart(_ context.Context, id string, n int, body store.Body) (store.Part, error) {
	b, err := io.ReadAll(body.Reader())
	if err != nil {
		return store.Part{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	up, err := f.get(id)
	if err != nil {
		return store.Part{}, err
	}
	if int64(len(b)) != up.u.PartSizeOf(n) {
		return store.Part{}, fmt.Errorf("%w: part %d is %d bytes", store.ErrUploadMismatch, n, len(b))
	}
	up.parts[n] = b
	return store.Part{Number: n, Size: int64(len(b)), ETag: etagOf(b)}, nil
}

func (f *fakeStore) Complete(_ context.Context, id string, parts []store.Part) (store.Completed, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	up, err := f.get(id)
	if err != nil {
		return store.Completed{}, err
	}
	if len(parts) != up.u.PartCount() {
		return store.Completed{}, fmt.Errorf("%w: %d parts named, %d needed", store.ErrUploadMismatch, len(parts), up.u.PartCount())
	}
	var all []byte
	for i, p := range parts {
		b, ok := up.parts[i+1]
		if p.Number != i+1 || !ok || etagOf(b) != p.ETag {
			return store.Completed{}, fmt.Errorf("%w: part %d", store.ErrUploadMismatch, i+1)
		}
		all = append(all, b...)
	}
	delete(f.uploads, id)
	sum := sha256.Sum256(all)
	if hexSum := hex.EncodeToString(sum[:]); up.u.SHA256 != "" && up.u.SHA256 != hexSum {
		return store.Completed{}, fmt.Errorf("%w: declared %s, got %s", store.ErrChecksum, up.u.SHA256, hexSum)
	}
	crc := store.EncodeCRC64NVME(crc64nvme.Checksum(all))
	if up.u.CRC64NVME != "" && up.u.CRC64NVME != crc {
		return store.Completed{}, fmt.Errorf("%w: declared CRC64NVME %s, got %s", store.ErrChecksum, up.u.CRC64NVME, crc)
	}
	if _, ok := f.files[up.u.Name]; ok {
		return store.Completed{}, fmt.Errorf("%w: %q", store.ErrExists, up.u.Name)
	}
	f.files[up.u.Name] = all
	return store.Completed{
		Info:      store.Info{Name: up.u.Name, Size: int64(len(all)), ETag: etagOf(all)},
		SHA256:    hex.EncodeToString(sum[:]),
		CRC64NVME: crc,
	}, nil
}

func (f *fakeStore) Abort(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.get(id); err != nil {
		return err
	}
	delete(f.uploads, id)
	return nil
}
