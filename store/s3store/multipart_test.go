package s3store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/crc64nvme"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/store"
	"spillway/store/storetest"
)

// Three parts of store.MinPartSize, the last one short: the smallest file
// that S3 takes in more than two parts.
const mpSize = 2*store.MinPartSize + 12345

func createUpload(t *testing.T, st *Store, f uploadtest.File, sha string) store.Upload {
	t.Helper()
	return createUploadCRC(t, st, f, sha, "")
}

// crcOf is f's CRC64NVME as a client declares it.
func crcOf(f uploadtest.File) string { return store.EncodeCRC64NVME(crc64nvme.Checksum(f.Bytes())) }

func createUploadCRC(t *testing.T, st *Store, f uploadtest.File, sha, crc string) store.Upload {
	t.Helper()
	u, err := st.CreateUpload(t.Context(), store.Upload{Name: f.Name, Size: f.Size, SHA256: sha, CRC64NVME: crc, PartSize: store.MinPartSize})
	require.NoError(t, err)
	require.True(t, store.ValidUploadID(u.ID), u.ID)
	return u
}

// sendParts PUTs parts nums of data (all when none are named) to their
// presigned URLs with client, as a browser or `spillway push` would, and
// returns them with the ETags S3 answered.
func sendParts(t *testing.T, client *http.Client, st *Store, u store.Upload, data []byte, nums ...int) []store.Part {
	t.Helper()
	if len(nums) == 0 {
		for n := 1; n <= u.PartCount(); n++ {
			nums = append(nums, n)
		}
	}
	var parts []store.Part
	for _, n := range nums {
		pu, err := st.PresignPart(t.Context(), u, n, time.Hour)
		require.NoError(t, err)
		require.Equal(t, http.MethodPut, pu.Method)
		require.Equal(t, u.PartSizeOf(n), pu.Size)
		off := int64(n-1) * u.PartSize
		status, etag := putPart(t, client, pu, data[off:off+pu.Size])
		require.Equal(t, http.StatusOK, status)
		require.NotEmpty(t, etag, "S3 must answer a part with its ETag")
		parts = append(parts, store.Part{Number: n, Size: pu.Size, ETag: etag})
	}
	return parts
}

func putPart(t *testing.T, client *http.Client, pu store.PartURL, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), pu.Method, pu.URL, bytes.NewReader(body))
	require.NoError(t, err)
	for k, v := range pu.Header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	msg, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode != http.StatusOK {
		t.Logf("part %d: %s: %s", pu.Number, resp.Status, msg)
	}
	return resp.StatusCode, resp.Header.Get("ETag")
}

// internalKeys lists what the store keeps under <prefix>.spillway/. It
// runs in cleanups too, where t.Context is done.
func internalKeys(t *testing.T, e *env, prefix string) []string {
	t.Helper()
	out, err := e.gw.Client().ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{
		Bucket: aws.String(e.gw.Bucket), Prefix: aws.String(prefix + internalDir),
	})
	require.NoError(t, err)
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

// requireGone fails t unless the upload has left nothing behind: no record,
// no staging object, no multipart upload, and the store does not know it.
func requireGone(t *testing.T, e *env, st *Store, prefix, id string) {
	t.Helper()
	assert.Empty(t, internalKeys(t, e, prefix), "records or staging objects left behind")
	e.gw.RequireNoMultipartUploads(t)
	_, err := st.Upload(t.Context(), id)
	require.ErrorIs(t, err, store.ErrUploadNotFound)
	_, err = st.ListParts(t.Context(), id)
	require.ErrorIs(t, err, store.ErrUploadNotFound)
}

func TestMultipartPresignedPartsPublish(t *testing.T) {
	for _, prefix := range []string{"", "tenant/a/"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			e := newEnv(t, Options{Prefix: prefix})
			f := uploadtest.File{Name: "dir/big file.pdf", Seed: 200, Size: mpSize}
			data := f.Bytes()
			u := createUploadCRC(t, e.store, f, f.SHA256(), crcOf(f))
			assert.Equal(t, 3, u.PartCount())
			assert.WithinDuration(t, time.Now(), u.Created, time.Minute)
			got, err := e.store.Upload(t.Context(), u.ID)
			require.NoError(t, err)
			assert.Equal(t, u, got)

			pu, err := e.store.PresignPart(t.Context(), u, 3, 10*time.Minute)
			require.NoError(t, err)
			assert.Empty(t, pu.Header, "a plain PUT needs no extra header")
			assert.Contains(t, pu.URL, "X-Amz-Expires=600")
			assert.WithinDuration(t, time.Now().Add(10*time.Minute), pu.Expires, time.Minute)
			assert.Equal(t, int64(12345), pu.Size)

			parts := sendParts(t, &http.Client{}, e.store, u, data)
			listed, err := e.store.ListParts(t.Context(), u.ID)
			require.NoError(t, err)
			assert.Equal(t, parts, listed)

			assert.Empty(t, storetest.ListAll(t, e.store, "", 0), "an upload in progress is no file")

			done, err := e.store.Complete(t.Context(), u.ID, parts)
			require.NoError(t, err)
			assert.Equal(t, f.SHA256(), done.SHA256)
			assert.True(t, done.SHA256Declared, "the store never saw the bytes")
			assert.Equal(t, crcOf(f), done.CRC64NVME)
			assert.Equal(t, f.Name, done.Name)
			assert.Equal(t, f.Size, done.Size)
			assert.NotEmpty(t, done.ETag)
			storetest.RequireStored(t, e.store, f)
			uploadtest.RequireFile(t, f, e.gw.ObjectPath(prefix+f.Name))
			head, err := e.gw.Client().HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(e.gw.Bucket), Key: aws.String(prefix + f.Name), ChecksumMode: types.ChecksumModeEnabled})
			require.NoError(t, err)
			assert.Equal(t, "application/pdf", aws.ToString(head.ContentType))
			assert.Equal(t, crcOf(f), aws.ToString(head.ChecksumCRC64NVME))
			assert.Equal(t, types.ChecksumTypeFullObject, head.ChecksumType)
			assert.Equal(t, map[string]string{"sha256": f.SHA256(), "sha256-declared": "true"}, head.Metadata)
			requireGone(t, e, e.store, prefix, u.ID)

			_, err = e.store.Complete(t.Context(), u.ID, parts)
			require.ErrorIs(t, err, store.ErrUploadNotFound)
		})
	}
}

// The part URL signs Content-Length: S3 refuses a part of the wrong size
// when it is sent.
func TestMultipartPartURLBindsLength(t *testing.T) {
	e := newEnv(t, Options{})
	f := uploadtest.File{Name: "len.bin", Seed: 201, Size: mpSize}
	u := createUpload(t, e.store, f, "")
	pu, err := e.store.PresignPart(t.Context(), u, 1, time.Hour)
	require.NoError(t, err)
	assert.Contains(t, pu.URL, "content-length")
	// The gateway refuses on the headers, and may reset the connection
	// while the client still sends the body: either way, no part.
	for _, n := range []int64{1, pu.Size - 1, pu.Size + 1} {
		req, err := http.NewRequestWithContext(t.Context(), pu.Method, pu.URL, bytes.NewReader(f.Bytes()[:n]))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Logf("%d bytes: %v", n, err)
			continue
		}
		resp.Body.Close()
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, "%d bytes", n)
	}
	parts, err := e.store.ListParts(t.Context(), u.ID)
	require.NoError(t, err)
	assert.Empty(t, parts)
	require.NoError(t, e.store.Abort(t.Context(), u.ID))
}

// The function builds its client with NewEnvClient, which honours
// AWS_CA_BUNDLE as the SDK's standard chain does; the URLs it presigns
// must work for a plain http.Client either way.
func TestMultipartPresignWithAndWithoutCABundle(t *testing.T) {
	e := newEnv(t, Options{})
	bundle := os.Getenv("AWS_CA_BUNDLE")
	if bundle == "" {
		bundle = "/etc/ssl/certs/ca-certificates.crt"
	}
	if _, err := os.Stat(bundle); err != nil {
		t.Skipf("no CA bundle to test with: %v", err)
	}
	for _, set := range []bool{true, false} {
		name := map[bool]string{true: "AWS_CA_BUNDLE set", false: "AWS_CA_BUNDLE unset"}[set]
		t.Run(name, func(t *testing.T) {
			for _, kv := range e.gw.Env() {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			t.Setenv("AWS_CA_BUNDLE", bundle)
			if !set {
				require.NoError(t, os.Unsetenv("AWS_CA_BUNDLE")) // t.Setenv restores it
			}
			client, err := NewEnvClient(os.Getenv)
			require.NoError(t, err)
			st := New(client, e.gw.Bucket, Options{})
			f := uploadtest.File{Name: "ca/" + strings.ReplaceAll(name, " ", "-") + ".bin", Seed: 202, Size: mpSize}
			u := createUpload(t, st, f, f.SHA256())
			parts := sendParts(t, &http.Client{}, st, u, f.Bytes())
			_, err = st.Complete(t.Context(), u.ID, parts)
			require.NoError(t, err)
			storetest.RequireStored(t, st, f)
		})
	}
	assert.Empty(t, internalKeys(t, e, ""))
}

// S3 checks the declared CRC64NVME of the whole file when the upload
// completes: bytes that do not match are refused and nothing is published.
func TestMultipartWrongCRC64NVMEDiscardsEverything(t *testing.T) {
	e := newEnv(t, Options{Prefix: "p/"})
	f := uploadtest.File{Name: "bad.iso", Seed: 203, Size: mpSize}
	other := uploadtest.File{Seed: 204, Size: mpSize}
	u := createUploadCRC(t, e.store, f, other.SHA256(), crcOf(other))
	parts := sendParts(t, http.DefaultClient, e.store, u, f.Bytes())
	_, err := e.store.Complete(t.Context(), u.ID, parts)
	require.ErrorIs(t, err, store.ErrChecksum)
	require.NotErrorIs(t, err, store.ErrUploadMismatch)
	storetest.RequireAbsent(t, e.store, f.Name)
	requireNoObjectFile(t, e.gw, "p/"+f.Name)
	requireGone(t, e, e.store, "p/", u.ID)
}

func TestMultipartAbort(t *testing.T) {
	e := newEnv(t, Options{})
	f := uploadtest.File{Name: "abort.bin", Seed: 205, Size: mpSize}
	data := f.Bytes()

	t.Run("with parts", func(t *testing.T) {
		u := createUpload(t, e.store, f, "")
		sendParts(t, http.DefaultClient, e.store, u, data, 1, 3)
		require.NoError(t, e.store.Abort(t.Context(), u.ID))
		requireGone(t, e, e.store, "", u.ID)
		require.ErrorIs(t, e.store.Abort(t.Context(), u.ID), store.ErrUploadNotFound)
		_, err := e.store.Complete(t.Context(), u.ID, nil)
		require.ErrorIs(t, err, store.ErrUploadNotFound)
		_, err = e.store.PresignPart(t.Context(), u, 1, time.Hour)
		require.ErrorIs(t, err, store.ErrUploadNotFound)
	})

	t.Run("all parts sent", func(t *testing.T) {
		u := createUploadCRC(t, e.store, f, "", crcOf(f))
		sendParts(t, http.DefaultClient, e.store, u, data)
		require.NoError(t, e.store.Abort(t.Context(), u.ID))
		requireGone(t, e, e.store, "", u.ID)
	})
	storetest.RequireAbsent(t, e.store, f.Name)
}

func TestMultipartNameTakenMeanwhile(t *testing.T) {
	e := newEnv(t, Options{})
	f := uploadtest.File{Name: "taken.bin", Seed: 206, Size: mpSize}
	u := createUploadCRC(t, e.store, f, f.SHA256(), crcOf(f))
	parts := sendParts(t, http.DefaultClient, e.store, u, f.Bytes())
	first := uploadtest.File{Name: f.Name, Seed: 207, Size: 1000}
	require.NoError(t, put(t, e, first))

	_, err := e.store.Complete(t.Context(), u.ID, parts)
	require.ErrorIs(t, err, store.ErrExists)
	storetest.RequireStored(t, e.store, first)
	requireGone(t, e, e.store, "", u.ID)
}

func TestMultipartOverwrite(t *testing.T) {
	e := newEnv(t, Options{Overwrite: true})
	f := uploadtest.File{Name: "over.bin", Seed: 208, Size: mpSize}
	require.NoError(t, put(t, e, uploadtest.File{Name: f.Name, Seed: 209, Size: 10}))
	u := createUpload(t, e.store, f, "")
	parts := sendParts(t, http.DefaultClient, e.store, u, f.Bytes())
	done, err := e.store.Complete(t.Context(), u.ID, parts)
	require.NoError(t, err)
	assert.Empty(t, done.SHA256, "the store never sees the bytes: no SHA-256 unless declared")
	assert.Equal(t, crcOf(f), done.CRC64NVME, "S3's CRC of the parts, even when none was declared")
	storetest.RequireStored(t, e.store, f)
	requireGone(t, e, e.store, "", u.ID)
}

// A parts list that does not match leaves the upload as it was, and the
// client completes once it has fixed what was wrong.
func TestMultipartMismatchLeavesUploadIntact(t *testing.T) {
	e := newEnv(t, Options{})
	f := uploadtest.File{Name: "mismatch.bin", Seed: 210, Size: mpSize}
	data := f.Bytes()
	u := createUpload(t, e.store, f, f.SHA256())
	parts := sendParts(t, http.DefaultClient, e.store, u, data, 1, 2)

	stale := withParts(parts, store.Part{Number: 3, ETag: `"00000000000000000000000000000000"`})
	for name, list := range map[string][]store.Part{
		"missing part":  parts,
		"not received":  stale,
		"duplicate":     {parts[0], parts[0], parts[1]},
		"numbered from": {{Number: 0}, parts[0], parts[1]},
		"none":          nil,
	} {
		_, err := e.store.Complete(t.Context(), u.ID, list)
		require.ErrorIs(t, err, store.ErrUploadMismatch, name)
	}
	parts = append(parts, sendParts(t, http.DefaultClient, e.store, u, data, 3)...)
	wrongETag := withParts(parts[:2], store.Part{Number: 3, ETag: `"00000000000000000000000000000000"`})
	_, err := e.store.Complete(t.Context(), u.ID, wrongETag)
	require.ErrorIs(t, err, store.ErrUploadMismatch)

	// A part of the wrong size, sent around the presigned URL.
	rec, _, err := e.store.loadRecord(t.Context(), u.ID)
	require.NoError(t, err)
	out, err := e.gw.Client().UploadPart(t.Context(), &s3.UploadPartInput{
		Bucket: aws.String(e.gw.Bucket), Key: aws.String(rec.Key), UploadId: aws.String(rec.UploadID),
		PartNumber: aws.Int32(2), Body: bytes.NewReader(data[:store.MinPartSize+1]),
	})
	require.NoError(t, err)
	wrongSize := withParts(parts[:1], store.Part{Number: 2, ETag: aws.ToString(out.ETag)}, parts[2])
	_, err = e.store.Complete(t.Context(), u.ID, wrongSize)
	require.ErrorIs(t, err, store.ErrUploadMismatch)

	fixed := sendParts(t, http.DefaultClient, e.store, u, data, 2)
	parts[1] = fixed[0]
	_, err = e.store.Complete(t.Context(), u.ID, []store.Part{parts[1], parts[0], parts[2]})
	require.ErrorIs(t, err, store.ErrUploadMismatch, "out of order")

	// Unquoted ETags are the same parts.
	unquoted := withParts(parts)
	for i := range unquoted {
		unquoted[i].ETag = strings.Trim(unquoted[i].ETag, `"`)
	}
	_, err = e.store.Complete(t.Context(), u.ID, unquoted)
	require.NoError(t, err)
	storetest.RequireStored(t, e.store, f)
	requireGone(t, e, e.store, "", u.ID)
}

func withParts(a []store.Part, more ...store.Part) []store.Part {
	return append(append([]store.Part(nil), a...), more...)
}

// failing answers S3 requests that match with an error, 403 AccessDenied
// (which the SDK does not retry) unless code says otherwise, and forwards
// the rest.
type failing struct {
	base   http.RoundTripper
	match  func(*http.Request) bool
	status int    // 0: 403
	code   string // "": AccessDenied
}

func (f *failing) RoundTrip(r *http.Request) (*http.Response, error) {
	if !f.match(r) {
		return f.base.RoundTrip(r)
	}
	if r.Body != nil {
		r.Body.Close()
	}
	status, code := http.StatusForbidden, "AccessDenied"
	if f.status != 0 {
		status, code = f.status, f.code
	}
	body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>` + code + `</Code><Message>refused by the test</Message></Error>`
	return &http.Response{
		StatusCode: status, Status: http.StatusText(status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/xml"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: r,
	}, nil
}

func failingStore(e *env, opts Options, match func(*http.Request) bool) *Store {
	c := s3.New(e.gw.Client().Options(), func(o *s3.Options) {
		o.HTTPClient = &http.Client{Transport: &failing{base: &http.Transport{}, match: match}}
	})
	return New(c, e.gw.Bucket, opts)
}

func TestMultipartRecordWriteFailureAbortsUpload(t *testing.T) {
	e := newEnv(t, Options{})
	st := failingStore(e, Options{}, func(r *http.Request) bool {
		return r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, ".json")
	})
	_, err := st.CreateUpload(t.Context(), store.Upload{Name: "x.bin", Size: mpSize, PartSize: store.MinPartSize})
	require.ErrorIs(t, err, store.ErrBackend)
	e.gw.RequireNoMultipartUploads(t)
	assert.Empty(t, internalKeys(t, e, ""))
}

// isComplete matches a CompleteMultipartUpload request.
func isComplete(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Query().Has("uploadId")
}

// S3 refuses the completion: the upload stays, with its parts, and a
// Complete retried later publishes it.
func TestMultipartCompleteRetriedAfterPublishFails(t *testing.T) {
	e := newEnv(t, Options{})
	st := failingStore(e, Options{}, isComplete)
	f := uploadtest.File{Name: "retry.bin", Seed: 211, Size: mpSize}
	u := createUpload(t, st, f, f.SHA256())
	parts := sendParts(t, http.DefaultClient, st, u, f.Bytes())
	_, err := st.Complete(t.Context(), u.ID, parts)
	require.ErrorIs(t, err, store.ErrBackend)
	storetest.RequireAbsent(t, e.store, f.Name)

	// Another instance, as the next Lambda invocation may be.
	listed, err := e.store.ListParts(t.Context(), u.ID)
	require.NoError(t, err)
	assert.Equal(t, parts, listed, "the parts are still there")
	_, err = e.store.Complete(t.Context(), u.ID, parts[:2])
	require.ErrorIs(t, err, store.ErrUploadMismatch)
	done, err := e.store.Complete(t.Context(), u.ID, parts)
	require.NoError(t, err)
	assert.Equal(t, f.SHA256(), done.SHA256)
	storetest.RequireStored(t, e.store, f)
	requireGone(t, e, e.store, "", u.ID)
}

// Two Completes of one upload, through two instances (two Lambda
// invocations): one publishes, and the file is stored once, intact, with
// nothing left of the upload. The other fails with ErrUploadNotFound or
// ErrExists, or, when it claims the record after the first completed the
// upload but before the first deleted the record, succeeds too, with the
// same file: versitygw answers a CompleteMultipartUpload of an upload
// already completed with success (and S3 may), so the two cannot be told
// apart.
// Fresh, they race for the record; retried after a publish failed, past
// it, for the name.
func TestMultipartConcurrentCompletes(t *testing.T) {
	for _, retried := range []bool{false, true} {
		for round := range 3 {
			e := newEnv(t, Options{})
			f := uploadtest.File{Name: "race.bin", Seed: uint64(212 + round), Size: mpSize}
			u := createUpload(t, e.store, f, f.SHA256())
			parts := sendParts(t, http.DefaultClient, e.store, u, f.Bytes())
			if retried {
				st := failingStore(e, Options{}, isComplete)
				_, err := st.Complete(t.Context(), u.ID, parts)
				require.ErrorIs(t, err, store.ErrBackend)
			}
			stores := []*Store{e.store, New(e.gw.Client(), e.gw.Bucket, Options{})}
			errs := make([]error, len(stores))
			done := make([]store.Completed, len(stores))
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i, st := range stores {
				wg.Go(func() {
					<-start
					done[i], errs[i] = st.Complete(context.Background(), u.ID, parts)
				})
			}
			close(start)
			wg.Wait()
			t.Logf("retried=%v round %d: %v", retried, round, errs)
			var ok int
			for i, err := range errs {
				if err == nil {
					ok++
					assert.Equal(t, f.SHA256(), done[i].SHA256, "a success reports the one file stored")
					continue
				}
				assert.True(t, errors.Is(err, store.ErrUploadNotFound) || errors.Is(err, store.ErrExists), "%v", err)
			}
			assert.GreaterOrEqual(t, ok, 1, "a Complete publishes")
			storetest.RequireStored(t, e.store, f)
			requireGone(t, e, e.store, "", u.ID)
		}
	}
}

func TestMultipartUnknownAndMalformedIDs(t *testing.T) {
	e := newEnv(t, Options{})
	for _, id := range []string{"", "AAAAAAAAAAAAAAAAAAAAAAAAAA", "aaaaaaaaaaaaaaaaaaaaaaaaaa", "../../etc/passwd", "AAAAAAAAAAAAAAAAAAAAAAAAA/", strings.Repeat("A", 27)} {
		_, err := e.store.Upload(t.Context(), id)
		require.ErrorIs(t, err, store.ErrUploadNotFound, id)
		_, err = e.store.ListParts(t.Context(), id)
		require.ErrorIs(t, err, store.ErrUploadNotFound, id)
		_, err = e.store.Complete(t.Context(), id, nil)
		require.ErrorIs(t, err, store.ErrUploadNotFound, id)
		require.ErrorIs(t, e.store.Abort(t.Context(), id), store.ErrUploadNotFound, id)
		_, err = e.store.PresignPart(t.Context(), store.Upload{ID: id, Size: 1, PartSize: store.MinPartSize}, 1, time.Hour)
		require.ErrorIs(t, err, store.ErrUploadNotFound, id)
	}

	u := createUpload(t, e.store, uploadtest.File{Name: "n.bin", Size: mpSize}, "")
	for _, n := range []int{0, 4, -1} {
		_, err := e.store.PresignPart(t.Context(), u, n, time.Hour)
		require.ErrorIs(t, err, store.ErrUploadMismatch, n)
	}
	require.NoError(t, e.store.Abort(t.Context(), u.ID))
}

func TestMultipartRefusesBadDeclarations(t *testing.T) {
	e := newEnv(t, Options{})
	for name, u := range map[string]store.Upload{
		"name":       {Name: ".spillway/uploads/x.json", Size: 1, PartSize: store.MinPartSize},
		"size":       {Name: "a", Size: 0, PartSize: store.MinPartSize},
		"part size":  {Name: "a", Size: 1, PartSize: store.MinPartSize - 1},
		"part count": {Name: "a", Size: store.MinPartSize*store.MaxPartCount + 1, PartSize: store.MinPartSize},
		"sha256":     {Name: "a", Size: 1, PartSize: store.MinPartSize, SHA256: "abc"},
	} {
		_, err := e.store.CreateUpload(t.Context(), u)
		require.Error(t, err, name)
	}
	assert.Empty(t, internalKeys(t, e, ""))
}

// List shows files only, never what uploads keep under .spillway/, in
// whatever state they are.
func TestListSkipsUploadState(t *testing.T) {
	for _, prefix := range []string{"", "tenant/a/"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			e := newEnv(t, Options{Prefix: prefix})
			file := uploadtest.File{Name: "visible.txt", Seed: 220, Size: 10}
			require.NoError(t, put(t, e, file))
			f := uploadtest.File{Name: "pending.bin", Seed: 221, Size: mpSize}
			u := createUpload(t, e.store, f, "")
			sendParts(t, http.DefaultClient, e.store, u, f.Bytes(), 1)
			// A staging object as earlier versions left one, and a stray
			// key under the directory.
			for _, key := range []string{prefix + uploadsDir + u.ID + ".object", prefix + internalDir + "stray"} {
				_, err := e.gw.Client().PutObject(t.Context(), &s3.PutObjectInput{
					Bucket: aws.String(e.gw.Bucket), Key: aws.String(key), Body: strings.NewReader("x"),
				})
				require.NoError(t, err)
			}
			assert.Equal(t, []string{file.Name}, storetest.ListAll(t, e.store, "", 0))
			// Names on both sides of the hidden keys, a page at a time:
			// a page that ends among the hidden keys goes on past them.
			require.NoError(t, put(t, e, uploadtest.File{Name: "!first.txt", Seed: 222, Size: 1}, uploadtest.File{Name: "-second.txt", Seed: 223, Size: 1}))
			for _, limit := range []int{1, 2, 3} {
				assert.Equal(t, []string{"!first.txt", "-second.txt", file.Name}, storetest.ListAll(t, e.store, "", limit), "limit %d", limit)
			}
			require.NoError(t, e.store.Abort(t.Context(), u.ID))
		})
	}
}

// counting counts what the store asks of S3 and the bytes of every
// response body it reads.
type counting struct {
	base http.RoundTripper

	mu        sync.Mutex
	requests  []string
	bodyBytes int64 // of objects other than upload records
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.requests = append(c.requests, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery+" copy-source="+r.Header.Get("X-Amz-Copy-Source"))
	c.mu.Unlock()
	resp, err := c.base.RoundTrip(r)
	if err != nil || r.Method != http.MethodGet || strings.HasSuffix(r.URL.Path, ".json") || r.URL.RawQuery != "" && !strings.HasPrefix(r.URL.RawQuery, "x-id=GetObject") {
		return resp, err
	}
	resp.Body = &countedBody{ReadCloser: resp.Body, c: c}
	return resp, nil
}

type countedBody struct {
	io.ReadCloser
	c *counting
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.c.mu.Lock()
	b.c.bodyBytes += int64(n)
	b.c.mu.Unlock()
	return n, err
}

// Completing reads no object back and copies nothing: the bytes the store
// reads from S3 during Complete are 0, whatever the file's size.
func TestMultipartCompleteMovesNoBytes(t *testing.T) {
	e := newEnv(t, Options{})
	cnt := &counting{base: &http.Transport{}}
	st := New(s3.New(e.gw.Client().Options(), func(o *s3.Options) { o.HTTPClient = &http.Client{Transport: cnt} }), e.gw.Bucket, Options{})
	f := uploadtest.File{Name: "big.bin", Seed: 230, Size: mpSize}
	u := createUploadCRC(t, st, f, f.SHA256(), crcOf(f))
	parts := sendParts(t, http.DefaultClient, st, u, f.Bytes())
	cnt.mu.Lock()
	cnt.requests, cnt.bodyBytes = nil, 0
	cnt.mu.Unlock()

	done, err := st.Complete(t.Context(), u.ID, parts)
	require.NoError(t, err)
	assert.Equal(t, crcOf(f), done.CRC64NVME)
	cnt.mu.Lock()
	defer cnt.mu.Unlock()
	t.Logf("Complete: %d requests, %d bytes of objects read", len(cnt.requests), cnt.bodyBytes)
	assert.Zero(t, cnt.bodyBytes, "bytes of the file read back: %v", cnt.requests)
	for _, r := range cnt.requests {
		assert.NotContains(t, r, "x-id=UploadPartCopy")
		assert.True(t, strings.HasSuffix(r, "copy-source="), "no copy: %s", r)
	}
	assert.LessOrEqual(t, len(cnt.requests), 6, "a fixed number of requests: %v", cnt.requests)
	storetest.RequireStored(t, e.store, f)
	requireGone(t, e, e.store, "", u.ID)
}

// S3's other answer to a taken name: 409 ConditionalRequestConflict, when
// another write of the key races the completion. AWS says to create the
// upload again, so the client sees 409 exists, as for a name taken
// meanwhile, and the upload is discarded. versitygw never answers it, so
// the test's transport does, in front of the real gateway.
func TestMultipartConditionalRequestConflict(t *testing.T) {
	e := newEnv(t, Options{})
	c := s3.New(e.gw.Client().Options(), func(o *s3.Options) {
		o.HTTPClient = &http.Client{Transport: &failing{base: &http.Transport{}, match: isComplete,
			status: http.StatusConflict, code: "ConditionalRequestConflict"}}
	})
	st := New(c, e.gw.Bucket, Options{})
	f := uploadtest.File{Name: "conflict.bin", Seed: 231, Size: mpSize}
	u := createUploadCRC(t, st, f, "", crcOf(f))
	parts := sendParts(t, http.DefaultClient, st, u, f.Bytes())
	_, err := st.Complete(t.Context(), u.ID, parts)
	require.ErrorIs(t, err, store.ErrExists)
	storetest.RequireAbsent(t, e.store, f.Name)
	requireGone(t, e, e.store, "", u.ID)
}

// A declared SHA-256 is the client's word: on S3 the store never sees the
// bytes and S3 checks no whole-object SHA-256 of a multipart upload. The
// CRC64NVME, which S3 checks, passes, so the file is published, and the
// SHA-256 is reported and stored as declared.
func TestMultipartDeclaredSHA256IsReportedAsDeclared(t *testing.T) {
	e := newEnv(t, Options{})
	f := uploadtest.File{Name: "declared.bin", Seed: 232, Size: mpSize}
	lie := uploadtest.File{Seed: 233, Size: mpSize}.SHA256()
	u := createUploadCRC(t, e.store, f, lie, crcOf(f))
	parts := sendParts(t, http.DefaultClient, e.store, u, f.Bytes())
	done, err := e.store.Complete(t.Context(), u.ID, parts)
	require.NoError(t, err)
	assert.Equal(t, lie, done.SHA256)
	assert.True(t, done.SHA256Declared)
	assert.Equal(t, crcOf(f), done.CRC64NVME)
	head, err := e.gw.Client().HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(e.gw.Bucket), Key: aws.String(f.Name)})
	require.NoError(t, err)
	assert.Equal(t, "true", head.Metadata["sha256-declared"])
}

// A record left behind by a completion whose delete of it failed: a
// Complete retried later finds no upload, and removes the record.
func TestMultipartStaleRecordIsRemoved(t *testing.T) {
	e := newEnv(t, Options{})
	f := uploadtest.File{Name: "stale.bin", Seed: 234, Size: mpSize}
	u := createUploadCRC(t, e.store, f, "", crcOf(f))
	parts := sendParts(t, http.DefaultClient, e.store, u, f.Bytes())
	rec, _, err := e.store.loadRecord(t.Context(), u.ID)
	require.NoError(t, err)
	_, err = e.store.Complete(t.Context(), u.ID, parts)
	require.NoError(t, err)
	_, err = e.store.putRecord(t.Context(), u.ID, rec, "")
	require.NoError(t, err)

	_, err = e.store.Complete(t.Context(), u.ID, parts)
	require.ErrorIs(t, err, store.ErrUploadNotFound)
	storetest.RequireStored(t, e.store, f)
	requireGone(t, e, e.store, "", u.ID)
}

// partCRCs are f's parts' CRC64NVME, as u cuts them.
func partCRCs(f uploadtest.File, partSize int64) []string {
	data := f.Bytes()
	var out []string
	for off := int64(0); off < int64(len(data)); off += partSize {
		out = append(out, store.EncodeCRC64NVME(crc64nvme.Checksum(data[off:min(off+partSize, int64(len(data)))])))
	}
	return out
}

// Declared part checksums are signed into the part URLs, which list the
// header to send: S3 refuses a part whose bytes do not match when it is
// sent, and takes it again with the right bytes.
func TestMultipartPartURLSignsItsCRC64NVME(t *testing.T) {
	e := newEnv(t, Options{})
	// The gateway closes a connection after refusing a part; a new
	// connection for each request keeps the next one off it.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	f := uploadtest.File{Name: "signed.bin", Seed: 235, Size: mpSize}
	data := f.Bytes()
	u, err := e.store.CreateUpload(t.Context(), store.Upload{Name: f.Name, Size: f.Size, CRC64NVME: crcOf(f),
		PartCRC64NVME: partCRCs(f, store.MinPartSize), PartSize: store.MinPartSize})
	require.NoError(t, err)

	pu, err := e.store.PresignPart(t.Context(), u, 2, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"X-Amz-Checksum-Crc64nvme": u.PartCRC64NVME[1]}, pu.Header)
	other := bytes.Clone(data[store.MinPartSize : 2*store.MinPartSize])
	other[12345] ^= 1
	status, _ := putPart(t, client, pu, other)
	assert.Equal(t, http.StatusBadRequest, status, "a part that does not match its signed CRC64NVME")
	listed, err := e.store.ListParts(t.Context(), u.ID)
	require.NoError(t, err)
	assert.Empty(t, listed, "the corrupted part is not kept")

	// The URL signs the header, so a part sent without it is refused. (Sent
	// for real, the gateway answers 403 before reading the body and resets
	// the connection while the client is still writing it, so the test
	// reads the signature's header list instead.)
	signed, err := url.Parse(pu.URL)
	require.NoError(t, err)
	assert.Contains(t, strings.Split(signed.Query().Get("X-Amz-SignedHeaders"), ";"), "x-amz-checksum-crc64nvme")

	parts := sendParts(t, client, e.store, u, data)
	done, err := e.store.Complete(t.Context(), u.ID, parts)
	require.NoError(t, err)
	assert.Equal(t, crcOf(f), done.CRC64NVME)
	storetest.RequireStored(t, e.store, f)
	requireGone(t, e, e.store, "", u.ID)

	_, err = e.store.CreateUpload(t.Context(), store.Upload{Name: "short.bin", Size: f.Size,
		PartCRC64NVME: partCRCs(f, store.MinPartSize)[:2], PartSize: store.MinPartSize})
	require.ErrorIs(t, err, store.ErrBadCRC64NVME, "one checksum per part")
}
