// Package s3store stores uploads as S3 objects. A spooled body is seekable
// and its length is known, so it goes up in one PutObject carrying the
// CRC64NVME that the spool computed, which S3 verifies, and the SHA-256 in
// the object's metadata; bodies over the part size go up as a multipart
// upload of the same full-object CRC64NVME, aborted on any failure. Every
// object so carries the same checksums however it arrived, a multipart
// upload through presigned parts included.
package s3store

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"spillway/store"
)

// Defaults for Options.
const (
	DefaultPartSize      = 64 << 20
	DefaultPresignExpiry = 15 * time.Minute
	// DefaultRegion signs requests when the environment names no region.
	DefaultRegion = "us-east-1"
)

// Options configure a Store.
type Options struct {
	// Prefix is prepended to every name to make its key.
	Prefix string
	// Overwrite lets an upload replace an object. Off, every write carries
	// If-None-Match: *, so of two racing uploads exactly one wins.
	Overwrite bool
	// PartSize is the largest body sent in one PutObject, and the part size
	// of larger ones. Zero means DefaultPartSize; S3 needs at least 5 MiB.
	PartSize int64
	// PresignExpiry is how long a download URL stays valid.
	PresignExpiry time.Duration
}

// Store is a store.Store over one bucket.
type Store struct {
	client  *s3.Client
	presign *s3.PresignClient
	bucket  string
	opts    Options

	mu      sync.Mutex
	pending []pendingAbort // multipart uploads whose abort failed

	idsMu     sync.Mutex
	uploadIDs map[string]string // upload ID -> S3 upload ID; see s3UploadID

	tusLease time.Duration // tus leases' length; zero is tusLease (tus.go)
}

// pendingAbort is a multipart upload that could not be aborted when it
// failed (S3 unreachable, say). The next Put tries again, so an outage does
// not leave parts behind until the bucket's lifecycle rule.
type pendingAbort struct {
	key, uploadID string
}

var (
	_ store.Store         = (*Store)(nil)
	_ store.Presigner     = (*Store)(nil)
	_ store.Multipart     = (*Store)(nil)
	_ store.PartPresigner = (*Store)(nil)
)

// New returns a Store writing to bucket through client.
func New(client *s3.Client, bucket string, opts Options) *Store {
	if opts.PartSize <= 0 {
		opts.PartSize = DefaultPartSize
	}
	if opts.PresignExpiry <= 0 {
		opts.PresignExpiry = DefaultPresignExpiry
	}
	return &Store{
		client: client, presign: s3.NewPresignClient(client), bucket: bucket, opts: opts,
		uploadIDs: make(map[string]string),
	}
}

func (s *Store) key(name string) string { return s.opts.Prefix + name }

// Capabilities implements store.Store: downloads and parts go straight to
// S3, at presigned URLs, and a bucket has no space to check.
func (s *Store) Capabilities() store.Caps {
	return store.Caps{Presigner: s, Multipart: s, PartPresigner: s, Resumable: s}
}

// Check implements store.Store.
func (s *Store) Check(ctx context.Context, name string, _ int64) error {
	if err := store.ValidateName(name); err != nil {
		return err
	}
	if s.opts.Overwrite {
		return nil
	}
	_, err := s.head(ctx, name)
	switch {
	case err == nil:
		return fmt.Errorf("%w: %q", store.ErrExists, name)
	case errors.Is(err, store.ErrNotFound):
		return nil
	}
	return err
}

// Put implements store.Store. S3 has no multi-object transaction: files are
// written in turn, and when one fails the ones already written are deleted.
func (s *Store) Put(ctx context.Context, files []store.File) (err error) {
	for _, f := range files {
		if err := store.ValidateName(f.Name); err != nil {
			return err
		}
	}
	s.retryAborts(ctx)
	var written []string
	defer func() {
		if err == nil {
			return
		}
		// Roll back even when the request's context is gone.
		cleanup := context.WithoutCancel(ctx)
		for _, name := range written {
			if _, derr := s.client.DeleteObject(cleanup, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(name))}); derr != nil {
				err = errors.Join(err, fmt.Errorf("s3store: roll back %q: %w", name, derr))
			}
		}
	}()
	for _, f := range files {
		if slices.Contains(written, f.Name) && !s.opts.Overwrite {
			return fmt.Errorf("%w: %q appears twice", store.ErrExists, f.Name)
		}
		var err error
		if f.Body.Size() <= s.opts.PartSize {
			err = s.putObject(ctx, f)
		} else {
			err = s.putMultipart(ctx, f)
		}
		if err != nil {
			return err
		}
		written = append(written, f.Name)
	}
	return nil
}

// putObject sends the body with its CRC64NVME rather than its SHA-256: S3
// takes one checksum per request, and the CRC is the one it keeps for
// every object, multipart uploads included. The SHA-256 goes in the
// metadata; the spool computed both in one pass over the bytes sent.
func (s *Store) putObject(ctx context.Context, f store.File) error {
	name, b := f.Name, f.Body
	sum := b.SHA256()
	in := &s3.PutObjectInput{
		Bucket:            &s.bucket,
		Key:               aws.String(s.key(name)),
		Body:              b.Reader(),
		ContentLength:     aws.Int64(b.Size()),
		ContentType:       aws.String(fileType(f)),
		ChecksumCRC64NVME: aws.String(store.EncodeCRC64NVME(b.CRC64NVME())),
		Metadata:          sha256Metadata(hex.EncodeToString(sum[:])),
	}
	if !s.opts.Overwrite {
		in.IfNoneMatch = aws.String("*")
	}
	if _, err := s.client.PutObject(ctx, in); err != nil {
		return mapError("put", name, err)
	}
	return nil
}

func (s *Store) putMultipart(ctx context.Context, f store.File) (err error) {
	name, b := f.Name, f.Body
	key := s.key(name)
	sum := b.SHA256()
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            &s.bucket,
		Key:               &key,
		ContentType:       aws.String(fileType(f)),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc64nvme,
		ChecksumType:      types.ChecksumTypeFullObject,
		Metadata:          sha256Metadata(hex.EncodeToString(sum[:])),
	})
	if err != nil {
		return mapError("create multipart upload", name, err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.abortOrDefer(ctx, key, aws.ToString(created.UploadId)))
		}
	}()

	r := b.Reader()
	var parts []types.CompletedPart
	for off, num := int64(0), int32(1); off < b.Size(); off, num = off+s.opts.PartSize, num+1 {
		n := min(s.opts.PartSize, b.Size()-off)
		// Each part is its own seekable section, which the SDK checksums
		// (CRC64NVME) and can retry.
		out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:            &s.bucket,
			Key:               &key,
			UploadId:          created.UploadId,
			PartNumber:        aws.Int32(num),
			Body:              io.NewSectionReader(r, off, n),
			ContentLength:     aws.Int64(n),
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc64nvme,
		})
		if err != nil {
			return mapError("upload part", name, err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num), ChecksumCRC64NVME: out.ChecksumCRC64NVME})
	}
	in := &s3.CompleteMultipartUploadInput{
		Bucket:            &s.bucket,
		Key:               &key,
		UploadId:          created.UploadId,
		MultipartUpload:   &types.CompletedMultipartUpload{Parts: parts},
		ChecksumType:      types.ChecksumTypeFullObject,
		ChecksumCRC64NVME: aws.String(store.EncodeCRC64NVME(b.CRC64NVME())),
	}
	if !s.opts.Overwrite {
		in.IfNoneMatch = aws.String("*")
	}
	if _, err := s.client.CompleteMultipartUpload(ctx, in); err != nil {
		return mapError("complete multipart upload", name, err)
	}
	return nil
}

func (s *Store) abort(ctx context.Context, key, uploadID string) error {
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: &uploadID})
	var gone *types.NoSuchUpload
	if errors.As(err, &gone) {
		return nil
	}
	return err
}

// abortOrDefer aborts a failed multipart upload, even when the request's
// context is gone. When S3 cannot be reached it keeps the upload for
// retryAborts and returns why.
func (s *Store) abortOrDefer(ctx context.Context, key, uploadID string) error {
	aerr := s.abort(context.WithoutCancel(ctx), key, uploadID)
	if aerr == nil {
		return nil
	}
	s.mu.Lock()
	s.pending = append(s.pending, pendingAbort{key, uploadID})
	s.mu.Unlock()
	return fmt.Errorf("s3store: abort multipart upload of %q (will retry): %w", key, aerr)
}

// retryAborts aborts the multipart uploads whose abort failed before,
// keeping those that fail again.
func (s *Store) retryAborts(ctx context.Context) {
	s.mu.Lock()
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()
	var failed []pendingAbort
	for _, p := range pending {
		if s.abort(context.WithoutCancel(ctx), p.key, p.uploadID) != nil {
			failed = append(failed, p)
		}
	}
	if len(failed) > 0 {
		s.mu.Lock()
		s.pending = append(s.pending, failed...)
		s.mu.Unlock()
	}
}

// List implements store.Store with ListObjectsV2, which returns keys in
// byte order: Prefix selects the folder, StartAfter resumes after the last
// key seen, and MaxKeys asks for one key more than the page holds, to know
// whether more follow.
func (s *Store) List(ctx context.Context, opts store.ListOptions) ([]store.Info, bool, error) {
	if err := store.ValidatePrefix(opts.Prefix); err != nil {
		return nil, false, err
	}
	limit := opts.PageLimit()
	prefix := s.key(opts.Prefix)
	// No valid name begins with a dot or a slash, and between the two no
	// other byte sorts: past the store's own objects under .spillway/,
	// listing goes on after this key.
	hidden, pastHidden := s.opts.Prefix+".", s.opts.Prefix+"/"
	var startAfter string
	if opts.After != "" {
		startAfter = s.key(opts.After)
	}
	var infos []store.Info
	for {
		in := &s3.ListObjectsV2Input{
			Bucket:  &s.bucket,
			Prefix:  aws.String(prefix),
			MaxKeys: aws.Int32(int32(min(limit+1-len(infos), maxListKeys))),
		}
		if startAfter != "" {
			in.StartAfter = aws.String(startAfter)
		}
		page, err := s.client.ListObjectsV2(ctx, in)
		if err != nil {
			return nil, false, mapError("list", opts.Prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			startAfter = key
			name := strings.TrimPrefix(key, s.opts.Prefix)
			// Upload records and staging objects are not files. Their
			// names would fail validation anyway; skipping them by prefix
			// says so, and keeps them out should the rules ever relax.
			if strings.HasPrefix(name, internalDir) || store.ValidateName(name) != nil {
				continue
			}
			if len(infos) == limit {
				return infos, true, nil
			}
			infos = append(infos, store.Info{
				Name:     name,
				Size:     aws.ToInt64(o.Size),
				Modified: aws.ToTime(o.LastModified),
				ETag:     aws.ToString(o.ETag),
			})
		}
		if !aws.ToBool(page.IsTruncated) || len(page.Contents) == 0 {
			return infos, false, nil
		}
		if strings.HasPrefix(startAfter, hidden) && pastHidden > startAfter {
			startAfter = pastHidden
		}
	}
}

// maxListKeys is the most keys one ListObjectsV2 call returns.
const maxListKeys = 1000

// Open implements store.Store. The reader fetches byte ranges on demand, so
// seeking (for Range requests) costs nothing until the next Read.
func (s *Store) Open(ctx context.Context, name string) (store.Info, io.ReadSeekCloser, error) {
	if err := store.ValidateName(name); err != nil {
		return store.Info{}, nil, err
	}
	info, err := s.head(ctx, name)
	if err != nil {
		return store.Info{}, nil, err
	}
	return info, &objectReader{ctx: ctx, s: s, name: name, size: info.Size}, nil
}

// Stat implements store.Store with a HeadObject.
func (s *Store) Stat(ctx context.Context, name string) (store.Info, error) {
	if err := store.ValidateName(name); err != nil {
		return store.Info{}, err
	}
	return s.head(ctx, name)
}

// Delete implements store.Store. S3's DeleteObject succeeds for a key
// that is not there, so the object is looked up first, and deleted only
// while its ETag is the one found (If-Match), so that a delete never
// removes a file uploaded under the name after it looked. Two deletes
// racing may both succeed: S3 (and versitygw) answer a DeleteObject of a
// key just deleted with success, If-Match or not. A "folder" is no key, so it is
// store.ErrNotFound like any missing name. A presigned download already
// under way is S3's to finish or fail.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := store.ValidateName(name); err != nil {
		return err
	}
	info, err := s.head(ctx, name)
	if err != nil {
		return err
	}
	_, err = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket:  &s.bucket,
		Key:     aws.String(s.key(name)),
		IfMatch: aws.String(info.ETag),
	})
	if err != nil {
		if errors.Is(mapError("delete", name, err), store.ErrExists) {
			// 412: the object found is gone, deleted (and perhaps
			// stored again) by someone else meanwhile.
			return fmt.Errorf("%w: s3store: delete %q: changed meanwhile: %v", store.ErrNotFound, name, err)
		}
		return mapError("delete", name, err)
	}
	return nil
}

// PresignGet implements store.Presigner: a GET URL for an existing object.
// The response overrides are part of the signature, so whoever holds the
// URL cannot have the object served inline as some other type.
func (s *Store) PresignGet(ctx context.Context, name string, hdr store.DownloadHeaders) (string, error) {
	if err := store.ValidateName(name); err != nil {
		return "", err
	}
	if _, err := s.head(ctx, name); err != nil {
		return "", err
	}
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(name))}
	if hdr.ContentType != "" {
		in.ResponseContentType = aws.String(hdr.ContentType)
	}
	if hdr.ContentDisposition != "" {
		in.ResponseContentDisposition = aws.String(hdr.ContentDisposition)
	}
	req, err := s.presign.PresignGetObject(ctx, in, s3.WithPresignExpires(s.opts.PresignExpiry))
	if err != nil {
		return "", mapError("presign", name, err)
	}
	return req.URL, nil
}

func (s *Store) head(ctx context.Context, name string) (store.Info, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(name)),
		ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		return store.Info{}, mapError("head", name, err)
	}
	return store.Info{Name: name, Size: aws.ToInt64(out.ContentLength), Modified: aws.ToTime(out.LastModified),
		ETag: aws.ToString(out.ETag), SHA256: objectSHA256(out), ContentType: aws.ToString(out.ContentType)}, nil
}

// sha256MetaKey is the user metadata (x-amz-meta-sha256) that carries a
// stored object's hex SHA-256, which the store computed before writing it.
// An object's metadata is written with its bytes and replaced with them, so
// it cannot go stale.
const sha256MetaKey = "sha256"

// sha256DeclaredMetaKey (x-amz-meta-sha256-declared: true) marks an
// x-amz-meta-sha256 that a client declared for a multipart upload, whose
// bytes the store never saw: S3 verified the CRC64NVME, nobody the SHA-256.
const sha256DeclaredMetaKey = "sha256-declared"

func sha256Metadata(sum string) map[string]string {
	return map[string]string{sha256MetaKey: sum}
}

// objectSHA256 is the object's SHA-256 from its metadata or, for an object
// stored before the metadata was written, from S3's own whole-object
// checksum (a single PutObject's); "" when neither says.
func objectSHA256(out *s3.HeadObjectOutput) string {
	if v := strings.ToLower(out.Metadata[sha256MetaKey]); len(v) == 64 {
		if _, err := hex.DecodeString(v); err == nil {
			return v
		}
	}
	if out.ChecksumType == types.ChecksumTypeFullObject || out.ChecksumType == "" {
		if b, err := base64.StdEncoding.DecodeString(aws.ToString(out.ChecksumSHA256)); err == nil && len(b) == sha256.Size {
			return hex.EncodeToString(b)
		}
	}
	return ""
}

type objectReader struct {
	ctx  context.Context
	s    *Store
	name string
	size int64
	off  int64
	body io.ReadCloser
}

func (o *objectReader) Read(p []byte) (int, error) {
	if o.off >= o.size {
		return 0, io.EOF
	}
	if o.body == nil {
		out, err := o.s.client.GetObject(o.ctx, &s3.GetObjectInput{
			Bucket: &o.s.bucket,
			Key:    aws.String(o.s.key(o.name)),
			Range:  aws.String(fmt.Sprintf("bytes=%d-", o.off)),
		})
		if err != nil {
			return 0, mapError("get", o.name, err)
		}
		o.body = out.Body
	}
	n, err := o.body.Read(p)
	o.off += int64(n)
	if err == io.EOF && o.off < o.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (o *objectReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += o.off
	case io.SeekEnd:
		offset += o.size
	}
	if offset < 0 {
		return 0, errors.New("s3store: seek before start")
	}
	if offset != o.off {
		o.Close()
		o.off = offset
	}
	return offset, nil
}

func (o *objectReader) Close() error {
	if o.body == nil {
		return nil
	}
	err := o.body.Close()
	o.body = nil
	return err
}

// fileType is the Content-Type a file is stored with: the one it comes
// with, else its name's.
func fileType(f store.File) string {
	if f.ContentType != "" {
		return f.ContentType
	}
	return contentType(f.Name)
}

func contentType(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// mapError turns SDK errors into the store's errors, keeping the original
// in the chain for the log.
func mapError(op, name string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("s3store: %s %q: %w", op, name, err)
	}
	kind := store.ErrBackend
	var ae smithy.APIError
	var re *awshttp.ResponseError
	switch {
	case errors.As(err, &ae) && apiErrorKind(ae.ErrorCode()) != nil:
		kind = apiErrorKind(ae.ErrorCode())
	case errors.As(err, &re):
		switch re.HTTPStatusCode() {
		case http.StatusNotFound:
			kind = store.ErrNotFound
		case http.StatusPreconditionFailed:
			kind = store.ErrExists
		case http.StatusServiceUnavailable, http.StatusTooManyRequests:
			kind = store.ErrThrottled
		}
	}
	return fmt.Errorf("%w: s3store: %s %q: %w", kind, op, name, err)
}

func apiErrorKind(code string) error {
	switch code {
	case "NoSuchKey", "NotFound":
		return store.ErrNotFound
	case "PreconditionFailed", "ConditionalRequestConflict":
		return store.ErrExists
	case "BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum":
		return store.ErrChecksum
	case "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
		"TooManyRequests", "ServiceUnavailable", "RequestThrottled":
		return store.ErrThrottled
	}
	return nil
}

// EndpointSet reports whether the environment gives S3 an explicit endpoint.
func EndpointSet(getenv func(string) string) bool {
	return getenv("AWS_ENDPOINT_URL_S3") != "" || getenv("AWS_ENDPOINT_URL") != ""
}
