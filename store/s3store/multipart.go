package s3store

// Multipart uploads (store.Multipart, store.PartPresigner).
//
// The function is stateless, so an upload's state lives in the bucket: a
// small JSON record at <Prefix>.spillway/uploads/<id>.json, and the parts
// in an S3 multipart upload at the file's own key. An upload in progress is
// no object, so it is not listed and takes no name; the bucket's lifecycle
// rules sweep what an abandoned upload leaves.
//
// S3 creates the upload with CRC64NVME of checksum type FULL_OBJECT and
// checks the whole file's declared CRC64NVME at completion, which also
// publishes the file, with If-None-Match: * against overwriting. So
// completion moves no bytes: no staging object, no read-back, no copy. The
// store never sees the bytes, so a declared SHA-256 is kept with the
// object (x-amz-meta-sha256, beside x-amz-meta-sha256-declared) and
// reported as the client's declaration, not a digest anyone verified.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
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

	// maxRecordSize bounds what loadRecord reads; a record is a few
	// hundred bytes.
	maxRecordSize = 4 << 20
	// maxCachedUploads bounds the S3 upload IDs kept for PresignPart.
	maxCachedUploads = 4096
)

// record is an upload's state, as stored at its record key.
type record struct {
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256,omitempty"`
	CRC64NVME string `json:"crc64nvme,omitempty"`
	// PartCRC64NVME are the parts' declared checksums, which their
	// presigned URLs sign.
	PartCRC64NVME []string  `json:"part_crc64nvme,omitempty"`
	PartSize      int64     `json:"part_size"`
	Created       time.Time `json:"created"`
	UploadID      string    `json:"s3_upload_id"`
	// Key is where the S3 upload is, and where it completes: the file's.
	Key string `json:"key"`
	// Claims counts the Completes that claimed the upload, each with
	// If-Match on the record, so that of two at once only one goes on.
	Claims int `json:"claims,omitempty"`
}

func (r record) upload(id string) store.Upload {
	return store.Upload{ID: id, Name: r.Name, Size: r.Size, SHA256: r.SHA256, CRC64NVME: r.CRC64NVME,
		PartCRC64NVME: r.PartCRC64NVME, PartSize: r.PartSize, Created: r.Created}
}

func (s *Store) recordKey(id string) string { return s.opts.Prefix + uploadsDir + id + ".json" }

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
	key := s.key(u.Name)
	in := &s3.CreateMultipartUploadInput{
		Bucket:            &s.bucket,
		Key:               &key,
		ContentType:       aws.String(contentType(u.Name)),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc64nvme,
		ChecksumType:      types.ChecksumTypeFullObject,
	}
	if u.SHA256 != "" {
		in.Metadata = map[string]string{sha256MetaKey: u.SHA256, sha256DeclaredMetaKey: "true"}
	}
	created, err := s.client.CreateMultipartUpload(ctx, in)
	if err != nil {
		return store.Upload{}, mapUploadError("create upload", u.ID, err)
	}
	rec := record{
		Name: u.Name, Size: u.Size, SHA256: u.SHA256, CRC64NVME: u.CRC64NVME, PartCRC64NVME: u.PartCRC64NVME,
		PartSize: u.PartSize, Created: u.Created, UploadID: aws.ToString(created.UploadId), Key: key,
	}
	if _, err := s.putRecord(ctx, u.ID, rec, ""); err != nil {
		return store.Upload{}, errors.Join(err, s.abortOrDefer(ctx, key, rec.UploadID))
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
	if u.CRC64NVME != "" {
		if _, err := store.ParseCRC64NVME(u.CRC64NVME); err != nil {
			return fmt.Errorf("s3store: create upload of %q: %w", u.Name, err)
		}
	}
	if err := u.CheckPartCRC64NVME(); err != nil {
		return fmt.Errorf("s3store: create upload of %q: %w", u.Name, err)
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
	parts, _, err := s.listParts(ctx, id, rec)
	return parts, err
}

// listParts returns the parts S3 holds, by number, and each one's
// CRC64NVME by number.
func (s *Store) listParts(ctx context.Context, id string, rec record) ([]store.Part, map[int]string, error) {
	parts := []store.Part{}
	sums := make(map[int]string)
	p := s3.NewListPartsPaginator(s.client, &s3.ListPartsInput{Bucket: &s.bucket, Key: &rec.Key, UploadId: &rec.UploadID})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, nil, mapUploadError("list parts", id, err)
		}
		for _, part := range page.Parts {
			n := int(aws.ToInt32(part.PartNumber))
			parts = append(parts, store.Part{Number: n, Size: aws.ToInt64(part.Size), ETag: quote(aws.ToString(part.ETag))})
			sums[n] = aws.ToString(part.ChecksumCRC64NVME)
		}
	}
	slices.SortFunc(parts, func(a, b store.Part) int { return a.Number - b.Number })
	return parts, sums, nil
}

// PresignPart implements store.PartPresigner. The URL signs the part's
// Content-Length, so S3 refuses a part of the wrong size when it is sent
// rather than at Complete. The client sends that length anyway when it
// sends exactly Size bytes (not chunked), and browsers refuse to set it by
// hand, so it is not listed in Header.
//
// When the part's CRC64NVME was declared, the URL signs it too, as
// x-amz-checksum-crc64nvme, listed in Header: S3 refuses a part whose
// bytes do not match (400 BadDigest) when it is sent. Only a signed value
// can be checked so: S3 refuses an x-amz-checksum header that a presigned
// URL does not sign (403 AccessDenied), and the SDK's presigner, given the
// algorithm alone, signs the checksum of an empty body.
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
	in := &s3.UploadPartInput{
		Bucket:        &s.bucket,
		Key:           aws.String(s.key(u.Name)),
		UploadId:      &uploadID,
		PartNumber:    aws.Int32(int32(n)),
		ContentLength: &size,
	}
	if crc := u.PartCRC64NVMEOf(n); crc != "" {
		in.ChecksumCRC64NVME = aws.String(crc)
	}
	req, err := s.presign.PresignUploadPart(ctx, in, s3.WithPresignExpires(ttl))
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

// Complete implements store.Multipart. It completes the S3 upload where
// it already is, at the file's key, with If-None-Match: * unless the store
// overwrites, and with the declared CRC64NVME of the whole file, which S3
// verifies (checksum type FULL_OBJECT). The bytes never pass through the
// store: completing takes the same few requests whatever the file's size.
//
// Two Completes of one upload cannot both publish: each claims the record
// with If-Match first, and the loser fails with ErrUploadNotFound. With
// Options.Overwrite, a Complete retried after an answer was lost may find
// the upload gone (ErrUploadNotFound) although it was published.
func (s *Store) Complete(ctx context.Context, id string, parts []store.Part) (store.Completed, error) {
	s.retryAborts(ctx)
	rec, etag, err := s.loadRecord(ctx, id)
	if err != nil {
		return store.Completed{}, err
	}
	u := rec.upload(id)
	have, sums, err := s.listParts(ctx, id, rec)
	if errors.Is(err, store.ErrUploadNotFound) {
		// Completed or aborted, and its record left behind by a delete
		// that failed: it describes nothing now.
		s.forgetUploadID(id)
		return store.Completed{}, errors.Join(err, s.deleteObject(context.WithoutCancel(ctx), s.recordKey(id)))
	}
	if err != nil {
		return store.Completed{}, err
	}
	held, err := matchParts(u, have, parts)
	if err != nil {
		return store.Completed{}, err
	}
	rec.Claims++
	if _, err := s.putRecord(ctx, id, rec, etag); err != nil {
		return store.Completed{}, err
	}

	completed := make([]types.CompletedPart, len(held))
	for i, p := range held {
		completed[i] = types.CompletedPart{PartNumber: aws.Int32(int32(p.Number)), ETag: aws.String(p.ETag)}
		// S3 wants each part's checksum named at completion of an upload
		// created with a checksum algorithm; it computed one for every
		// part sent without.
		if sum := sums[p.Number]; sum != "" {
			completed[i].ChecksumCRC64NVME = aws.String(sum)
		}
	}
	in := &s3.CompleteMultipartUploadInput{
		Bucket:          &s.bucket,
		Key:             &rec.Key,
		UploadId:        &rec.UploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
		ChecksumType:    types.ChecksumTypeFullObject,
	}
	if rec.CRC64NVME != "" {
		in.ChecksumCRC64NVME = aws.String(rec.CRC64NVME)
	}
	if !s.opts.Overwrite {
		in.IfNoneMatch = aws.String("*")
	}
	out, err := s.client.CompleteMultipartUpload(ctx, in)
	if err != nil {
		err = completeError(id, rec.Name, err)
		switch {
		case errors.Is(err, store.ErrUploadNotFound):
			// Aborted, swept, or completed by another Complete that
			// forgets the record itself.
			s.forgetUploadID(id)
		case errors.Is(err, store.ErrChecksum), errors.Is(err, store.ErrExists):
			return store.Completed{}, errors.Join(err, s.discard(ctx, id, rec))
		}
		return store.Completed{}, err
	}
	// The file is published: a record left behind by a failed delete,
	// the lifecycle rule sweeps, and a retried Complete finds no upload.
	s.forgetUploadID(id)
	_ = s.deleteObject(context.WithoutCancel(ctx), s.recordKey(id))

	c := store.Completed{SHA256: rec.SHA256, SHA256Declared: rec.SHA256 != "", CRC64NVME: aws.ToString(out.ChecksumCRC64NVME)}
	c.Info, err = s.head(ctx, rec.Name)
	if err != nil {
		// Report the published file from what is known rather than fail
		// a Complete that succeeded.
		c.Info = store.Info{Name: rec.Name, Size: rec.Size, Modified: time.Now().UTC(), ETag: aws.ToString(out.ETag), SHA256: rec.SHA256}
	}
	if c.CRC64NVME == "" {
		c.CRC64NVME = rec.CRC64NVME
	}
	return c, nil
}

// completeError maps a failed CompleteMultipartUpload. Of S3's two answers
// to a name that is taken, 412 PreconditionFailed means it exists, and 409
// ConditionalRequestConflict that another write of it raced this one; AWS
// says the upload must then be created again and its parts sent again, so
// both are ErrExists and the upload is discarded, as the contract says
// for a name taken meanwhile.
func completeError(id, name string, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "ConditionalRequestConflict" {
		return fmt.Errorf("%w: s3store: complete upload %q of %q: a concurrent write of the name: %w", store.ErrExists, id, name, err)
	}
	return mapUploadError("complete upload", id, err)
}

// matchParts checks the client's parts list against the parts S3 holds:
// exactly 1..PartCount in order, as S3's own CompleteMultipartUpload wants
// them, each of its declared size, with the same ETag, quoted or not. It
// returns the held parts 1..PartCount.
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

// Abort implements store.Multipart.
func (s *Store) Abort(ctx context.Context, id string) error {
	rec, _, err := s.loadRecord(ctx, id)
	if err != nil {
		return err
	}
	s.forgetUploadID(id)
	if err := s.abort(ctx, rec.Key, rec.UploadID); err != nil {
		return mapUploadError("abort upload", id, err)
	}
	// The record goes last, so that a failed Abort can be retried.
	if err := s.deleteObject(ctx, s.recordKey(id)); err != nil {
		return fmt.Errorf("s3store: abort upload %q: %w", id, err)
	}
	return nil
}

// discard aborts an upload that can never complete, and deletes its
// record, even when the request's context is gone.
func (s *Store) discard(ctx context.Context, id string, rec record) error {
	s.forgetUploadID(id)
	ctx = context.WithoutCancel(ctx)
	// The record first: from then on the upload is gone for every caller.
	if err := s.deleteObject(ctx, s.recordKey(id)); err != nil {
		return fmt.Errorf("s3store: discard upload %q: %w", id, err)
	}
	return s.abortOrDefer(ctx, rec.Key, rec.UploadID)
}

func (s *Store) deleteObject(ctx context.Context, key string) error {
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key}); err != nil {
		return mapError("delete", key, err)
	}
	return nil
}

// loadRecord reads an upload's record and the ETag it was read at.
func (s *Store) loadRecord(ctx context.Context, id string) (record, string, error) {
	b, etag, err := s.readRecord(ctx, "load upload", id, s.recordKey(id), maxRecordSize)
	if err != nil {
		if errors.Is(err, store.ErrUploadNotFound) {
			s.forgetUploadID(id)
		}
		return record{}, "", err
	}
	var rec record
	switch err := json.Unmarshal(b, &rec); {
	case len(b) > maxRecordSize:
		err = errors.New("record too large")
		fallthrough
	case err != nil:
		return record{}, "", fmt.Errorf("%w: s3store: load upload %q: %w", store.ErrBackend, id, err)
	case rec.Key == "" && rec.UploadID != "":
		// A record of the versions that completed through a staging
		// key: its parts are not at the file's key, so it cannot
		// complete here. The client creates the upload again.
		return record{}, "", fmt.Errorf("%w: s3store: load upload %q: a record from an earlier version", store.ErrUploadNotFound, id)
	case rec.Key != s.key(rec.Name) || rec.UploadID == "":
		return record{}, "", fmt.Errorf("%w: s3store: load upload %q: the record names key %q, upload ID %q",
			store.ErrBackend, id, rec.Key, rec.UploadID)
	}
	s.rememberUploadID(id, rec.UploadID)
	return rec, etag, nil
}

// readRecord reads the object at key, the record of upload id, and the
// ETag it was read at: at most limit bytes and one more, so that the
// caller can tell a record too large. A missing record, or an ID that
// cannot have one, is the upload not found; what says what was being done.
func (s *Store) readRecord(ctx context.Context, what, id, key string, limit int64) ([]byte, string, error) {
	if !store.ValidUploadID(id) {
		return nil, "", notFound(id)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if err = mapError(what, id, err); errors.Is(err, store.ErrNotFound) {
			return nil, "", notFound(id)
		}
		return nil, "", err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err != nil {
		return nil, "", mapError(what, id, err)
	}
	return b, aws.ToString(out.ETag), nil
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
	etag, err := s.putIfMatch(ctx, s.recordKey(id), b, ifMatch)
	if err != nil {
		mapped := mapError("save upload", id, err)
		// The raw error, not mapped: a lost race is no ErrExists.
		if ifMatch != "" && (errors.Is(mapped, store.ErrExists) || errors.Is(mapped, store.ErrNotFound)) {
			return "", fmt.Errorf("%w: s3store: save upload %q: it changed or went meanwhile: %w", store.ErrUploadNotFound, id, err)
		}
		return "", mapped
	}
	return etag, nil
}

// putIfMatch writes the JSON b at key: where no object is when ifMatch is
// empty, else over the object of ETag ifMatch only. It returns the new
// ETag, or PutObject's error as it came, for the caller to tell a lost
// race.
func (s *Store) putIfMatch(ctx context.Context, key string, b []byte, ifMatch string) (string, error) {
	in := &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &key,
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
		return "", err
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

func quote(etag string) string {
	if etag == "" || strings.HasPrefix(etag, `"`) {
		return etag
	}
	return `"` + etag + `"`
}
