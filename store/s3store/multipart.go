package s3store

// Multipart uploads (store.Multipart, store.PartPresigner).
//
// The function is stateless, so an upload's state lives in the bucket: a
// small JSON record at <Prefix>.spillway/uploads/<id>.json, and the parts
// in an S3 multipart upload whose key is a staging key,
// <Prefix>.spillway/uploads/<id>.object, never the file's name. Stored
// names cannot begin with a dot, so neither key collides with a file, and
// the bucket's lifecycle rule sweeps what an abandoned upload leaves there.
//
// Complete assembles the parts at the staging key and reads the result
// back, through SHA-256, before anything is published: S3 checks each part,
// but not a whole-file digest of a multipart object. Only verified bytes
// are then published under the name, with a server-side multipart copy
// whose completion carries If-None-Match: *. That is the no-overwrite
// publish every S3 honours: versitygw v1.8.0 ignores If-None-Match on
// CopyObject (it overwrites), so a plain CopyObject could clobber a file.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"spillway/store"
)

const (
	// internalDir holds the store's own objects, under the prefix.
	internalDir = ".spillway/"
	uploadsDir  = internalDir + "uploads/"

	// maxRecordSize bounds what loadRecord reads: a record of 10,000
	// verified parts is under 1 MB.
	maxRecordSize = 4 << 20
	// copyConcurrency is how many ranges of a file over 5 GiB are copied
	// at once, so that publishing fits in the function's timeout.
	copyConcurrency = 4
	// readBackBuffer is the one buffer a read-back streams through: memory
	// stays flat whatever the file's size.
	readBackBuffer = 1 << 20
	// maxCachedUploads bounds the S3 upload IDs kept for PresignPart.
	maxCachedUploads = 4096
)

// record is an upload's state, as stored at its record key.
type record struct {
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256,omitempty"`
	PartSize int64     `json:"part_size"`
	Created  time.Time `json:"created"`
	UploadID string    `json:"s3_upload_id"`
	Staging  string    `json:"staging_key"`
	// Parts, once set, are the parts a Complete verified and assembles.
	// The S3 multipart upload is gone once they are assembled, so they
	// are what ListParts reports then, and what a Complete retried after
	// a failure later on must name.
	Parts []store.Part `json:"parts,omitempty"`
}

func (r record) upload(id string) store.Upload {
	return store.Upload{ID: id, Name: r.Name, Size: r.Size, SHA256: r.SHA256, PartSize: r.PartSize, Created: r.Created}
}

func (s *Store) recordKey(id string) string  { return s.opts.Prefix + uploadsDir + id + ".json" }
func (s *Store) stagingKey(id string) string { return s.opts.Prefix + uploadsDir + id + ".object" }

func notFound(id string) error {
	return fmt.Errorf("%w: %q", store.ErrUploadNotFound, id)
}

// CreateUpload implements store.Multipart.
func (s *Store) CreateUpload(ctx context.Context, u store.Upload) (store.Upload, error) {
	u.SHA256 = strings.ToLower(u.SHA256)
	if err := checkDeclaration(u); err != nil {
		return store.Upload{}, err
	}
	s.retryAborts(ctx)
	u.ID = store.NewUploadID()
	u.Created = time.Now().UTC()
	staging := s.stagingKey(u.ID)
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &staging})
	if err != nil {
		return store.Upload{}, mapUploadError("create upload", u.ID, err)
	}
	rec := record{
		Name: u.Name, Size: u.Size, SHA256: u.SHA256, PartSize: u.PartSize, Created: u.Created,
		UploadID: aws.ToString(created.UploadId), Staging: staging,
	}
	if _, err := s.putRecord(ctx, u.ID, rec, ""); err != nil {
		return store.Upload{}, errors.Join(err, s.abortOrDefer(ctx, staging, rec.UploadID))
	}
	s.rememberUploadID(u.ID, rec.UploadID)
	return u, nil
}

// checkDeclaration refuses what the caller should already have refused:
// a bad declaration would otherwise only show at Complete, after the
// client has sent every part.
func checkDeclaration(u store.Upload) error {
	if err := u.Validate(); err != nil {
		return fmt.Errorf("s3store: create upload: %w", err)
	}
	if u.PartSize < store.MinPartSize {
		return fmt.Errorf("%w: s3store: create upload of %q: part size %d is under S3's %d", store.ErrInvalidUpload, u.Name, u.PartSize, store.MinPartSize)
	}
	return nil
}

// Upload implements store.Multipart.
func (s *Store) Upload(ctx context.Context, id string) (store.Upload, error) {
	rec, _, err := s.loadRecord(ctx, id)
	if err != nil {
		return store.Upload{}, err
	}
	return rec.upload(id), nil
}

// ListParts implements store.Multipart.
func (s *Store) ListParts(ctx context.Context, id string) ([]store.Part, error) {
	rec, _, err := s.loadRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	parts, err := s.listParts(ctx, id, rec)
	if errors.Is(err, store.ErrUploadNotFound) && rec.Parts != nil {
		// The parts were assembled by a Complete that failed after
		// assembling; they are in the staging object unless the upload
		// has gone since.
		if ok, herr := s.exists(ctx, rec.Staging); herr != nil {
			return nil, fmt.Errorf("s3store: list parts of upload %q: %w", id, herr)
		} else if ok {
			return slices.Clone(rec.Parts), nil
		}
	}
	return parts, err
}

func (s *Store) listParts(ctx context.Context, id string, rec record) ([]store.Part, error) {
	parts := []store.Part{}
	p := s3.NewListPartsPaginator(s.client, &s3.ListPartsInput{Bucket: &s.bucket, Key: &rec.Staging, UploadId: &rec.UploadID})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, mapUploadError("list parts", id, err)
		}
		for _, part := range page.Parts {
			parts = append(parts, store.Part{
				Number: int(aws.ToInt32(part.PartNumber)),
				Size:   aws.ToInt64(part.Size),
				ETag:   quote(aws.ToString(part.ETag)),
			})
		}
	}
	slices.SortFunc(parts, func(a, b store.Part) int { return a.Number - b.Number })
	return parts, nil
}

// PresignPart implements store.PartPresigner. The URL signs the part's
// Content-Length, so S3 refuses a part of the wrong size when it is sent
// rather than at Complete. The client sends that length anyway when it
// sends exactly Size bytes (not chunked), and browsers refuse to set it by
// hand, so it is not listed in Header.
func (s *Store) PresignPart(ctx context.Context, u store.Upload, n int, ttl time.Duration) (store.PartURL, error) {
	uploadID, err := s.s3UploadID(ctx, u.ID)
	if err != nil {
		return store.PartURL{}, err
	}
	size := u.PartSizeOf(n)
	if size < 0 {
		return store.PartURL{}, fmt.Errorf("%w: upload %q has no part %d", store.ErrUploadMismatch, u.ID, n)
	}
	if ttl <= 0 {
		ttl = s.opts.PresignExpiry
	}
	// Taken before signing, so the expiry reported is never later than
	// the one signed.
	now := time.Now()
	req, err := s.presign.PresignUploadPart(ctx, &s3.UploadPartInput{
		Bucket:        &s.bucket,
		Key:           aws.String(s.stagingKey(u.ID)),
		UploadId:      &uploadID,
		PartNumber:    aws.Int32(int32(n)),
		ContentLength: &size,
	}, s3.WithPresignExpires(ttl))
	if err != nil {
		return store.PartURL{}, mapUploadError("presign part", u.ID, err)
	}
	var header map[string]string
	for k, v := range req.SignedHeader {
		switch http.CanonicalHeaderKey(k) {
		case "Host", "Content-Length":
			continue
		}
		if header == nil {
			header = make(map[string]string)
		}
		header[k] = strings.Join(v, ",")
	}
	return store.PartURL{Number: n, Size: size, Method: req.Method, URL: req.URL, Header: header, Expires: now.Add(ttl)}, nil
}

// s3UploadID returns the S3 upload ID of an upload. The API presigns up to
// 500 parts for one request, so the ID is kept from the record that
// CreateUpload wrote or that Upload read, rather than read per part. An
// upload ID never changes; a kept one may only outlive its upload (aborted
// through another instance), and then S3 refuses the part.
func (s *Store) s3UploadID(ctx context.Context, id string) (string, error) {
	if !store.ValidUploadID(id) {
		return "", notFound(id)
	}
	s.idsMu.Lock()
	uploadID, ok := s.uploadIDs[id]
	s.idsMu.Unlock()
	if ok {
		return uploadID, nil
	}
	rec, _, err := s.loadRecord(ctx, id)
	if err != nil {
		return "", err
	}
	return rec.UploadID, nil
}

func (s *Store) rememberUploadID(id, uploadID string) {
	s.idsMu.Lock()
	defer s.idsMu.Unlock()
	if len(s.uploadIDs) >= maxCachedUploads {
		for k := range s.uploadIDs {
			delete(s.uploadIDs, k)
			break
		}
	}
	s.uploadIDs[id] = uploadID
}

func (s *Store) forgetUploadID(id string) {
	s.idsMu.Lock()
	delete(s.uploadIDs, id)
	s.idsMu.Unlock()
}

// Complete implements store.Multipart.
//
// Two Completes of one upload cannot both publish: the record is claimed
// with If-Match before the parts are assembled, and the copy under the
// name completes with If-None-Match. The loser fails with
// ErrUploadNotFound (the record changed or went, the staging object went)
// or ErrExists. With Options.Overwrite, two retries racing each other may
// both publish, the same verified bytes.
func (s *Store) Complete(ctx context.Context, id string, parts []store.Part) (store.Completed, error) {
	s.retryAborts(ctx)
	rec, etag, err := s.loadRecord(ctx, id)
	if err != nil {
		return store.Completed{}, err
	}
	u := rec.upload(id)
	if rec.Parts == nil {
		have, err := s.listParts(ctx, id, rec)
		if err != nil {
			return store.Completed{}, err
		}
		if rec.Parts, err = matchParts(u, have, parts); err != nil {
			return store.Completed{}, err
		}
		if etag, err = s.putRecord(ctx, id, rec, etag); err != nil {
			return store.Completed{}, err
		}
	} else if _, err := matchParts(u, rec.Parts, parts); err != nil {
		return store.Completed{}, err
	}

	if err := s.assemble(ctx, id, rec, etag); err != nil {
		return store.Completed{}, err
	}
	size, sum, stagingETag, err := s.readBack(ctx, id, rec)
	if err != nil {
		return store.Completed{}, err
	}
	switch {
	case size != u.Size:
		err = fmt.Errorf("%w: upload %q: assembled %d bytes, declared %d", store.ErrUploadMismatch, id, size, u.Size)
	case u.SHA256 != "" && sum != u.SHA256:
		err = fmt.Errorf("%w: upload %q: the bytes' SHA-256 is %s, declared %s", store.ErrChecksum, id, sum, u.SHA256)
	}
	if err != nil {
		return store.Completed{}, errors.Join(err, s.discard(ctx, id, rec))
	}

	out, err := s.publish(ctx, id, rec, stagingETag, sum)
	if errors.Is(err, store.ErrExists) {
		return store.Completed{}, errors.Join(err, s.discard(ctx, id, rec))
	}
	if err != nil {
		return store.Completed{}, err
	}
	// The file is published: what is left to delete, the lifecycle rule
	// sweeps if this fails, and a retried Complete finds no upload or is
	// refused by If-None-Match, so the error would only mislead.
	_ = s.discard(ctx, id, rec)

	info, err := s.head(ctx, rec.Name)
	if err != nil {
		// Likewise: report the published file from what is known rather
		// than fail a Complete that succeeded.
		info = store.Info{Name: rec.Name, Size: size, Modified: time.Now().UTC(), ETag: aws.ToString(out.ETag), SHA256: sum}
	}
	return store.Completed{Info: info, SHA256: sum}, nil
}

// matchParts checks the client's parts list against the parts S3 holds
// (or a Complete recorded): exactly 1..PartCount in order, as S3's own
// CompleteMultipartUpload wants them, each of its declared size, with the
// same ETag, quoted or not. It returns the held parts 1..PartCount.
func matchParts(u store.Upload, have, claimed []store.Part) ([]store.Part, error) {
	mismatch := func(format string, args ...any) ([]store.Part, error) {
		return nil, fmt.Errorf("%w: upload %q: %s", store.ErrUploadMismatch, u.ID, fmt.Sprintf(format, args...))
	}
	count := u.PartCount()
	if len(claimed) != count {
		return mismatch("%d parts named, the upload has %d", len(claimed), count)
	}
	held := make(map[int]store.Part, len(have))
	for _, p := range have {
		held[p.Number] = p
	}
	out := make([]store.Part, 0, count)
	for i, c := range claimed {
		n := i + 1
		if c.Number != n {
			return mismatch("the parts named are not exactly 1..%d in order", count)
		}
		h, ok := held[n]
		switch {
		case !ok:
			return mismatch("part %d has not been received", n)
		case h.Size != u.PartSizeOf(n):
			return mismatch("part %d holds %d bytes, not %d", n, h.Size, u.PartSizeOf(n))
		case strings.Trim(c.ETag, `"`) != strings.Trim(h.ETag, `"`):
			return mismatch("part %d has ETag %s, not %s", n, h.ETag, c.ETag)
		}
		out = append(out, h)
	}
	return out, nil
}

// assemble completes the staging upload from the recorded parts. An upload
// already assembled (by a Complete that failed later, or one running now)
// is left as it is.
func (s *Store) assemble(ctx context.Context, id string, rec record, etag string) error {
	completed := make([]types.CompletedPart, len(rec.Parts))
	for i, p := range rec.Parts {
		completed[i] = types.CompletedPart{PartNumber: aws.Int32(int32(p.Number)), ETag: aws.String(p.ETag)}
	}
	_, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &s.bucket,
		Key:             &rec.Staging,
		UploadId:        &rec.UploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
	})
	if err == nil {
		return nil
	}
	err = mapUploadError("assemble upload", id, err)
	switch {
	case errors.Is(err, store.ErrUploadNotFound):
		ok, herr := s.exists(ctx, rec.Staging)
		switch {
		case herr != nil:
			return errors.Join(err, herr)
		case ok:
			return nil
		}
		// Neither parts nor an assembled object: aborted, swept, or
		// published and forgotten by another Complete. The record is
		// all that is left of it.
		s.forgetUploadID(id)
		return errors.Join(err, s.deleteObject(ctx, s.recordKey(id)))
	case errors.Is(err, store.ErrUploadMismatch):
		// A part was sent again after the list was checked. Forget the
		// parts recorded, so that the client can list the parts and
		// complete again.
		rec.Parts = nil
		if _, perr := s.putRecord(ctx, id, rec, etag); perr != nil {
			return errors.Join(err, perr)
		}
	}
	return err
}

// readBack streams the staging object through SHA-256 with one fixed
// buffer, returning its size, hex digest and ETag.
func (s *Store) readBack(ctx context.Context, id string, rec record) (int64, string, string, error) {
	var opts []func(*s3.Options)
	if rec.SHA256 != "" {
		// The declared SHA-256 decides. The SDK's own response checksum
		// (CRC64NVME) would otherwise fail first on corrupt bytes, as a
		// read error that says nothing about which bytes are wrong, and
		// the upload would be kept as if S3 had failed, not discarded.
		opts = append(opts, func(o *s3.Options) {
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		})
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &rec.Staging}, opts...)
	if err != nil {
		return 0, "", "", stagingError("read back upload", id, err)
	}
	defer out.Body.Close()
	h := sha256.New()
	var n counter
	// Wrapping the body hides any WriterTo, so the copy goes through buf.
	if _, err := io.CopyBuffer(io.MultiWriter(h, &n), struct{ io.Reader }{out.Body}, make([]byte, readBackBuffer)); err != nil {
		return 0, "", "", mapError("read back upload", id, err)
	}
	return int64(n), hex.EncodeToString(h.Sum(nil)), aws.ToString(out.ETag), nil
}

type counter int64

func (c *counter) Write(p []byte) (int, error) {
	*c += counter(len(p))
	return len(p), nil
}

// publish copies the staging object, as it was read back (srcETag), under
// the upload's name with its SHA-256 (sum, as read back) in its metadata,
// and completes the copy with If-None-Match unless the store overwrites.
// The copy's multipart upload is aborted on any failure.
func (s *Store) publish(ctx context.Context, id string, rec record, srcETag, sum string) (_ *s3.CompleteMultipartUploadOutput, err error) {
	key := s.key(rec.Name)
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:      &s.bucket,
		Key:         &key,
		ContentType: aws.String(contentType(rec.Name)),
		Metadata:    sha256Metadata(sum),
	})
	if err != nil {
		return nil, mapError("publish", rec.Name, err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.abortOrDefer(ctx, key, aws.ToString(created.UploadId)))
		}
	}()
	parts, err := s.copyParts(ctx, id, rec, srcETag, key, aws.ToString(created.UploadId))
	if err != nil {
		return nil, err
	}
	in := &s3.CompleteMultipartUploadInput{
		Bucket:          &s.bucket,
		Key:             &key,
		UploadId:        created.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}
	if !s.opts.Overwrite {
		in.IfNoneMatch = aws.String("*")
	}
	out, err := s.client.CompleteMultipartUpload(ctx, in)
	if err != nil {
		return nil, mapError("publish", rec.Name, err)
	}
	return out, nil
}

// copyParts copies the staging object into the upload at key in ranges of
// copyPartSize, a few at once. Each copy requires the source's ETag to be
// the one read back, so only verified bytes are published.
func (s *Store) copyParts(ctx context.Context, id string, rec record, srcETag, key, uploadID string) ([]types.CompletedPart, error) {
	count := int((rec.Size + s.copyPartSize - 1) / s.copyPartSize)
	parts := make([]types.CompletedPart, count)
	source := url.PathEscape(s.bucket) + "/" + escapeKey(rec.Staging)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, copyConcurrency)
	var wg sync.WaitGroup
loop:
	for i := range count {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		wg.Go(func() {
			defer func() { <-sem }()
			first := int64(i) * s.copyPartSize
			last := min(first+s.copyPartSize, rec.Size) - 1
			out, err := s.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
				Bucket:            &s.bucket,
				Key:               &key,
				UploadId:          &uploadID,
				PartNumber:        aws.Int32(int32(i + 1)),
				CopySource:        &source,
				CopySourceRange:   aws.String(fmt.Sprintf("bytes=%d-%d", first, last)),
				CopySourceIfMatch: &srcETag,
			})
			if err != nil {
				cancel(stagingError("publish", id, err))
				return
			}
			parts[i] = types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.CopyPartResult.ETag}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return parts, nil
}

// escapeKey URL-encodes a key for x-amz-copy-source, segment by segment.
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return strings.Join(segs, "/")
}

// Abort implements store.Multipart. It also removes an upload whose parts
// were assembled by a Complete that failed before publishing.
func (s *Store) Abort(ctx context.Context, id string) error {
	rec, _, err := s.loadRecord(ctx, id)
	if err != nil {
		return err
	}
	s.forgetUploadID(id)
	if err := s.abort(ctx, rec.Staging, rec.UploadID); err != nil {
		return mapUploadError("abort upload", id, err)
	}
	// The record goes last, so that a failed Abort can be retried.
	if err := s.deleteObject(ctx, rec.Staging); err != nil {
		return fmt.Errorf("s3store: abort upload %q: %w", id, err)
	}
	if err := s.deleteObject(ctx, s.recordKey(id)); err != nil {
		return fmt.Errorf("s3store: abort upload %q: %w", id, err)
	}
	return nil
}

// discard deletes an assembled upload's staging object and record, even
// when the request's context is gone.
func (s *Store) discard(ctx context.Context, id string, rec record) error {
	s.forgetUploadID(id)
	ctx = context.WithoutCancel(ctx)
	// The record first: from then on the upload is gone for every caller.
	if err := s.deleteObject(ctx, s.recordKey(id)); err != nil {
		return fmt.Errorf("s3store: discard upload %q: %w", id, err)
	}
	if err := s.deleteObject(ctx, rec.Staging); err != nil {
		return fmt.Errorf("s3store: discard upload %q: %w", id, err)
	}
	return nil
}

func (s *Store) deleteObject(ctx context.Context, key string) error {
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key}); err != nil {
		return mapError("delete", key, err)
	}
	return nil
}

func (s *Store) exists(ctx context.Context, key string) (bool, error) {
	_, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err == nil {
		return true, nil
	}
	if err = mapError("head", key, err); errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return false, err
}

// loadRecord reads an upload's record and the ETag it was read at.
func (s *Store) loadRecord(ctx context.Context, id string) (record, string, error) {
	if !store.ValidUploadID(id) {
		return record{}, "", notFound(id)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.recordKey(id))})
	if err != nil {
		if err = mapError("load upload", id, err); errors.Is(err, store.ErrNotFound) {
			s.forgetUploadID(id)
			return record{}, "", notFound(id)
		}
		return record{}, "", err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, maxRecordSize+1))
	if err != nil {
		return record{}, "", mapError("load upload", id, err)
	}
	var rec record
	switch err := json.Unmarshal(b, &rec); {
	case len(b) > maxRecordSize:
		err = errors.New("record too large")
		fallthrough
	case err != nil:
		return record{}, "", fmt.Errorf("%w: s3store: load upload %q: %w", store.ErrBackend, id, err)
	case rec.Staging != s.stagingKey(id) || rec.UploadID == "":
		return record{}, "", fmt.Errorf("%w: s3store: load upload %q: the record names staging key %q, upload ID %q",
			store.ErrBackend, id, rec.Staging, rec.UploadID)
	}
	s.rememberUploadID(id, rec.UploadID)
	return rec, aws.ToString(out.ETag), nil
}

// putRecord writes an upload's record: a new one (ifMatch "") only where
// none is, or over the one read at ifMatch, so that of two Completes only
// one claims the upload, and none brings back one that Abort removed. It
// returns the record's new ETag.
func (s *Store) putRecord(ctx context.Context, id string, rec record, ifMatch string) (string, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return "", fmt.Errorf("s3store: save upload %q: %w", id, err)
	}
	in := &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           aws.String(s.recordKey(id)),
		Body:          bytes.NewReader(b),
		ContentLength: aws.Int64(int64(len(b))),
		ContentType:   aws.String("application/json"),
	}
	if ifMatch == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = &ifMatch
	}
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		mapped := mapError("save upload", id, err)
		// The raw error, not mapped: a lost race is no ErrExists.
		if ifMatch != "" && (errors.Is(mapped, store.ErrExists) || errors.Is(mapped, store.ErrNotFound)) {
			return "", fmt.Errorf("%w: s3store: save upload %q: it changed or went meanwhile: %w", store.ErrUploadNotFound, id, err)
		}
		return "", mapped
	}
	return aws.ToString(out.ETag), nil
}

// mapUploadError is mapError for requests on a multipart upload, whose
// own failures mean something to the client.
func mapUploadError(op, id string, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchUpload":
			return fmt.Errorf("%w: s3store: %s %q: %w", store.ErrUploadNotFound, op, id, err)
		case "InvalidPart", "InvalidPartOrder", "EntityTooSmall":
			return fmt.Errorf("%w: s3store: %s %q: %w", store.ErrUploadMismatch, op, id, err)
		}
	}
	return mapError(op, id, err)
}

// stagingError maps a failure to read or copy the staging object: gone or
// changed means another Complete or an Abort got there first.
func stagingError(op, id string, err error) error {
	mapped := mapUploadError(op, id, err)
	// The raw error, not mapped: a source that fails If-Match is no
	// ErrExists, which would discard the upload.
	if errors.Is(mapped, store.ErrNotFound) || errors.Is(mapped, store.ErrExists) {
		return fmt.Errorf("%w: s3store: %s %q: its assembled object went or changed: %w", store.ErrUploadNotFound, op, id, err)
	}
	return mapped
}

func quote(etag string) string {
	if etag == "" || strings.HasPrefix(etag, `"`) {
		return etag
	}
	return `"` + etag + `"`
}
