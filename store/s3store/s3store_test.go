package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/crc64nvme"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/store"
	"spillway/store/storetest"
)

const threshold = 64 << 10

type env struct {
	gw       *testservers.S3
	store    *Store
	spooler  *spool.Spooler
	spoolDir string
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	e := &env{gw: testservers.StartS3(t), spoolDir: t.TempDir()}
	var err error
	e.spooler, err = spool.New(spool.Config{Dir: e.spoolDir, Threshold: threshold, MemoryBudget: 1 << 30})
	require.NoError(t, err)
	e.store = New(e.gw.Client(), e.gw.Bucket, opts)
	t.Cleanup(func() {
		uploadtest.RequireEmptyDir(t, e.spoolDir)
		if t.Failed() {
			return
		}
		select {
		case <-e.gw.Stopped():
		default:
			e.gw.RequireNoMultipartUploads(t)
		}
	})
	return e
}

// TestConformance runs the suite every store passes against a real S3
// gateway, with and without a key prefix.
func TestConformance(t *testing.T) {
	for _, prefix := range []string{"", "tenant/a/"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) (store.Store, *spool.Spooler) {
				e := newEnv(t, Options{Prefix: prefix})
				return e.store, e.spooler
			})
		})
	}
}

// TestListConformance runs the listing suite against a real S3 gateway,
// with and without a key prefix; files are removed with DeleteObject.
func TestListConformance(t *testing.T) {
	for _, prefix := range []string{"", "tenant/a/"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			storetest.RunList(t, func(t *testing.T) (store.Store, *spool.Spooler, func(string) error) {
				e := newEnv(t, Options{Prefix: prefix})
				return e.store, e.spooler, func(name string) error {
					_, err := e.gw.Client().DeleteObject(t.Context(), &s3.DeleteObjectInput{
						Bucket: aws.String(e.gw.Bucket), Key: aws.String(prefix + name),
					})
					return err
				}
			})
		})
	}
}

// TestMultipartConformance runs the multipart suite against a real S3
// gateway, with and without a key prefix. Every suite test finishes or
// aborts its uploads, so none may leave state under .spillway/.
func TestMultipartConformance(t *testing.T) {
	for _, prefix := range []string{"", "tenant/a/"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			storetest.RunMultipart(t, func(t *testing.T) (store.Store, *spool.Spooler) {
				e := newEnv(t, Options{Prefix: prefix})
				t.Cleanup(func() {
					if !t.Failed() {
						assert.Empty(t, internalKeys(t, e, prefix), "upload state left behind")
					}
				})
				return e.store, e.spooler
			})
		})
	}
}

func put(t *testing.T, e *env, files ...uploadtest.File) error {
	t.Helper()
	var puts []store.File
	for _, f := range files {
		// S3 reads every body alike: how it was spooled is not the point.
		puts = append(puts, store.File{Name: f.Name, Body: storetest.MemBody(f)})
	}
	return e.store.Put(t.Context(), puts)
}

func TestObjectsLandUnderPrefixWithChecksum(t *testing.T) {
	e := newEnv(t, Options{Prefix: "p/"})
	f := uploadtest.File{Name: "dir/doc.pdf", Seed: 1, Size: threshold + 1}
	require.NoError(t, put(t, e, f))
	uploadtest.RequireFile(t, f, e.gw.ObjectPath("p/dir/doc.pdf"))

	out, err := e.gw.Client().HeadObject(t.Context(), &s3.HeadObjectInput{
		Bucket: aws.String(e.gw.Bucket), Key: aws.String("p/dir/doc.pdf"), ChecksumMode: "ENABLED",
	})
	require.NoError(t, err)
	assert.Equal(t, "application/pdf", aws.ToString(out.ContentType))
	b := storetest.MemBody(f)
	sum := b.SHA256()
	assert.Equal(t, hex.EncodeToString(sum[:]), out.Metadata["sha256"], "the object must carry the body's SHA-256")
	assert.Equal(t, store.EncodeCRC64NVME(b.CRC64NVME()), aws.ToString(out.ChecksumCRC64NVME), "S3 must hold the body's CRC64NVME")
	assert.Equal(t, types.ChecksumTypeFullObject, out.ChecksumType)
	assert.Equal(t, store.EncodeCRC64NVME(crc64nvme.Checksum(f.Bytes())), aws.ToString(out.ChecksumCRC64NVME))
}

func TestMultipartPath(t *testing.T) {
	e := newEnv(t, Options{PartSize: 5 << 20})
	f := uploadtest.File{Name: "big.bin", Seed: 2, Size: 12<<20 + 3}
	require.NoError(t, put(t, e, f))
	storetest.RequireStored(t, e.store, f)
	e.gw.RequireNoMultipartUploads(t)

	// A second upload of the name fails at CompleteMultipartUpload
	// (If-None-Match), and its upload is aborted, not left behind.
	again := uploadtest.File{Name: "big.bin", Seed: 3, Size: 11 << 20}
	require.ErrorIs(t, put(t, e, again), store.ErrExists)
	e.gw.RequireNoMultipartUploads(t)
	storetest.RequireStored(t, e.store, f)
}

func TestChecksumMismatchMapsToErrChecksum(t *testing.T) {
	e := newEnv(t, Options{})
	_, err := e.gw.Client().PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: aws.String(e.gw.Bucket), Key: aws.String("bad.bin"),
		Body: strings.NewReader("hello"), ContentLength: aws.Int64(5),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(make([]byte, 32))),
	})
	require.Error(t, err)
	require.ErrorIs(t, mapError("put", "bad.bin", err), store.ErrChecksum)
	storetest.RequireAbsent(t, e.store, "bad.bin")
}

func TestWrongCredentialsAreABackendError(t *testing.T) {
	e := newEnv(t, Options{})
	bad := New(s3.New(s3.Options{
		Region: e.gw.Region, BaseEndpoint: aws.String(e.gw.Endpoint), UsePathStyle: true,
		Credentials: aws.AnonymousCredentials{},
	}), e.gw.Bucket, Options{})
	err := bad.Check(t.Context(), "x.bin", 1)
	require.ErrorIs(t, err, store.ErrBackend)
}

func TestS3DownIsABackendError(t *testing.T) {
	e := newEnv(t, Options{})
	b := storetest.MemBody(uploadtest.File{Size: 10})
	e.gw.Stop()
	err := e.store.Put(t.Context(), []store.File{{Name: "x.bin", Body: b}})
	require.ErrorIs(t, err, store.ErrBackend)
	_, _, err = e.store.List(t.Context(), store.ListOptions{})
	require.ErrorIs(t, err, store.ErrBackend)
}

func TestPresignedDownload(t *testing.T) {
	e := newEnv(t, Options{})
	f := uploadtest.File{Name: "a b/ü.txt", Seed: 5, Size: 1000}
	require.NoError(t, put(t, e, f))
	u, err := e.store.PresignGet(t.Context(), f.Name, store.DownloadHeaders{})
	require.NoError(t, err)
	assert.Contains(t, u, "X-Amz-Expires=900")
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	uploadtest.RequireContent(t, f, resp.Body)

	_, err = e.store.PresignGet(t.Context(), "missing.txt", store.DownloadHeaders{})
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestObjectReaderSeeks(t *testing.T) {
	e := newEnv(t, Options{})
	f := uploadtest.File{Name: "seek.bin", Seed: 6, Size: 100_000}
	require.NoError(t, put(t, e, f))
	_, rc, err := e.store.Open(context.Background(), f.Name)
	require.NoError(t, err)
	defer rc.Close()
	end, err := rc.Seek(0, io.SeekEnd)
	require.NoError(t, err)
	assert.Equal(t, f.Size, end)
	_, err = rc.Seek(50_000, io.SeekStart)
	require.NoError(t, err)
	got := make([]byte, 10)
	_, err = io.ReadFull(rc, got)
	require.NoError(t, err)
	assert.Equal(t, f.Bytes()[50_000:50_010], got)
}

// TestListOverAThousandObjects lists past S3's 1000 keys per
// ListObjectsV2: a full page, then the rest, every name once and in order,
// with the store's own upload state under the prefix skipped.
func TestListOverAThousandObjects(t *testing.T) {
	const n = store.MaxListLimit + 25
	e := newEnv(t, Options{Prefix: "p/"})
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("d%d/f%04d.txt", i%3, i)
	}
	work := make(chan string)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			for name := range work {
				if errs[w] == nil {
					_, errs[w] = e.gw.Client().PutObject(t.Context(), &s3.PutObjectInput{
						Bucket: aws.String(e.gw.Bucket), Key: aws.String("p/" + name), Body: strings.NewReader("x"),
					})
				}
			}
		})
	}
	for _, name := range names {
		work <- name
	}
	close(work)
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	u, err := e.store.CreateUpload(t.Context(), store.Upload{Name: "pending.bin", Size: 2 * store.MinPartSize, PartSize: store.MinPartSize})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, e.store.Abort(context.Background(), u.ID)) })
	slices.Sort(names)

	page, more, err := e.store.List(t.Context(), store.ListOptions{})
	require.NoError(t, err)
	require.Equal(t, store.MaxListLimit, len(page))
	require.True(t, more)
	assert.Equal(t, names, storetest.ListAll(t, e.store, "", 0))
	assert.Equal(t, names[:n/3+1], storetest.ListAll(t, e.store, "d0/", 0))
}

// TestStatReportsSHA256 checks that every way an object is written keeps
// its SHA-256 for Stat: one PutObject, the store's own multipart upload,
// and (from S3's whole-object checksum) an object written before the
// metadata was; an object that carries neither reports none.
func TestStatReportsSHA256(t *testing.T) {
	e := newEnv(t, Options{PartSize: 5 << 20})
	small := uploadtest.File{Name: "small.bin", Seed: 4, Size: threshold + 1}
	big := uploadtest.File{Name: "big.bin", Seed: 5, Size: 11<<20 + 7}
	require.NoError(t, put(t, e, small, big))
	for _, f := range []uploadtest.File{small, big} {
		info, err := e.store.Stat(t.Context(), f.Name)
		require.NoError(t, err)
		sum := storetest.MemBody(f).SHA256()
		assert.Equal(t, hex.EncodeToString(sum[:]), info.SHA256, f.Name)
	}

	old := []byte("written by an older server")
	sum := sha256.Sum256(old)
	_, err := e.gw.Client().PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(e.gw.Bucket), Key: aws.String("old.bin"),
		Body: bytes.NewReader(old), ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum[:]))})
	require.NoError(t, err)
	info, err := e.store.Stat(t.Context(), "old.bin")
	require.NoError(t, err)
	assert.Equal(t, hex.EncodeToString(sum[:]), info.SHA256, "from S3's whole-object checksum")

	_, err = e.gw.Client().PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(e.gw.Bucket), Key: aws.String("bare.bin"),
		Body: bytes.NewReader(old), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
	require.NoError(t, err)
	info, err = e.store.Stat(t.Context(), "bare.bin")
	require.NoError(t, err)
	assert.Empty(t, info.SHA256)
}
