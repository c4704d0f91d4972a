package s3store

// Resumable (tus) uploads (store.ResumableStore).
//
// A function has no process that outlives a request, so an upload's state
// is an object in the bucket, under the prefix:
//
//	.spillway/uploads/tus/<id>.json          the state (offset, parts, hash states)
//	.spillway/uploads/tus/<id>.<rand>.part   the bytes short of a part (S3's parts are
//	                                         at least 5 MiB but the last, and a Function
//	                                         URL takes about 4.7 MB a request)
//
// An Append claims the upload first: it writes the state with a lease,
// with If-Match on the ETag it read, so of two invocations only one gets
// it and the other is refused with ErrLocked. The lease is short, and
// renewed (If-Match again) while the Append runs, so an invocation that
// died (a crash, a timeout, a kill) holds the upload for at most a lease
// after its last renewal, not until its deadline. The
// holder streams the incomplete part and then the chunk through one
// part-sized buffer, uploading each full part, writes what is short of a
// part as a new incomplete-part object, and writes the state again, with
// If-Match on its lease's ETag, to advance the offset. The last chunk
// completes the multipart upload, which S3 checks against the whole
// file's CRC-64/NVME, at the file's key with If-None-Match, as Complete
// does. A finished upload keeps its state, marked finished and stripped
// of its parts, until it expires, so that a client resuming a stored URL
// learns the result; the lifecycle rule removes it with the rest.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"spillway/store"
)

var _ store.ResumableStore = (*Store)(nil)

const (
	tusDir = uploadsDir + "tus/"
	// tusExpiry is how long an upload lasts after its creation: the
	// template's lifecycle rule aborts multipart uploads a day after they
	// began.
	tusExpiry = 24 * time.Hour
	// tusLease is how long an Append holds an upload past its last
	// renewal: what a client retrying after a crash waits, at most, for
	// 423 to end. It is shorter than tus-js-client's default retries
	// take, and long enough for a renewal's PutObject to land.
	tusLease = 6 * time.Second
	// maxTusRecord bounds what is read of a state: 10,000 parts of about
	// 100 bytes.
	maxTusRecord = 2 << 20
)

// tusRecord is an upload's state, as stored.
type tusRecord struct {
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	Offset   int64     `json:"offset"`
	Metadata string    `json:"metadata,omitempty"`
	Created  time.Time `json:"created"`
	UploadID string    `json:"s3_upload_id"`
	PartSize int64     `json:"part_size"`
	Parts    []tusPart `json:"parts,omitempty"`
	// Pending is the key of the incomplete-part object, holding the
	// PendingSize bytes after the parts; "" when there are none.
	Pending     string `json:"pending,omitempty"`
	PendingSize int64  `json:"pending_size,omitempty"`
	// The running hashes of the bytes before Offset.
	SHA256 []byte `json:"sha256_state"`
	CRC64  []byte `json:"crc64nvme_state"`
	// Lease is when the Append that holds the upload gives it up; zero
	// when none does.
	Lease time.Time `json:"lease,omitzero"`
	// Assembled: the multipart upload was completed from the parts and
	// only the publish under the name is left (it failed once).
	Assembled     bool   `json:"assembled,omitempty"`
	AssembledETag string `json:"assembled_etag,omitempty"`
	Digest        string `json:"sha256,omitempty"`
	Whole         string `json:"crc64nvme,omitempty"`
	// Finished is when the file was published; zero before.
	Finished time.Time `json:"finished,omitzero"`
}

type tusPart struct {
	N    int32  `json:"n"`
	ETag string `json:"etag"`
	CRC  string `json:"crc64nvme"`
}

func (r *tusRecord) resumable(id string) store.Resumable {
	u := store.Resumable{ID: id, Name: r.Name, Size: r.Size, Offset: r.Offset, Metadata: r.Metadata,
		Created: r.Created, Expires: r.Created.Add(tusExpiry).Truncate(time.Second)}
	if !r.Finished.IsZero() {
		u.Done = &store.Finished{
			Info:   store.Info{Name: r.Name, Size: r.Size, Modified: r.Finished, SHA256: r.Digest},
			SHA256: r.Digest, CRC64NVME: r.Whole,
		}
	}
	return u
}

func (s *Store) tusKey(id, suffix string) string { return s.opts.Prefix + tusDir + id + suffix }

// tusPartSize is the part size of an upload of size bytes: S3's least, so
// a request buffers as little as it can, unless the file needs larger
// parts to fit in S3's 10,000. An upload whose size is deferred gets the
// least, which holds up to 10,000 × 5 MiB.
func tusPartSize(size int64) int64 {
	p := int64(store.MinPartSize)
	if need := (size + store.MaxPartCount - 1) / store.MaxPartCount; need > p {
		p = (need + 1<<20 - 1) &^ (1<<20 - 1)
	}
	return p
}

// CreateResumable implements store.ResumableStore.
func (s *Store) CreateResumable(ctx context.Context, r store.Resumable) (store.Resumable, error) {
	if err := store.ValidateName(r.Name); err != nil {
		return store.Resumable{}, err
	}
	if r.Size < store.UnknownSize || r.Size > store.MaxUploadSize {
		return store.Resumable{}, fmt.Errorf("%w: size %d", store.ErrUploadTooLarge, r.Size)
	}
	s.retryAborts(ctx)
	id := store.NewUploadID()
	// The bytes go to a multipart upload at the file's own key, which
	// completes there, as /uploads does: no staging object, no copy.
	staging := s.key(r.Name)
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &s.bucket, Key: &staging,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc64nvme,
		ChecksumType:      types.ChecksumTypeFullObject,
	})
	if err != nil {
		return store.Resumable{}, mapUploadError("create tus upload", id, err)
	}
	sum, _ := sha256.New().(encoding.BinaryMarshaler).MarshalBinary()
	crc, _ := store.NewCRC64NVME().(encoding.BinaryMarshaler).MarshalBinary()
	rec := tusRecord{
		Name: r.Name, Size: r.Size, Metadata: r.Metadata, Created: time.Now().UTC().Round(0),
		UploadID: aws.ToString(created.UploadId), PartSize: tusPartSize(r.Size), SHA256: sum, CRC64: crc,
	}
	if _, err := s.putTusRecord(ctx, id, &rec, ""); err != nil {
		return store.Resumable{}, errors.Join(err, s.abortOrDefer(ctx, staging, rec.UploadID))
	}
	return rec.resumable(id), nil
}

// loadTusRecord reads an upload's state and the ETag it was read at.
func (s *Store) loadTusRecord(ctx context.Context, id string) (tusRecord, string, error) {
	b, etag, err := s.readRecord(ctx, "load tus upload", id, s.tusKey(id, ".json"), maxTusRecord)
	if err != nil {
		return tusRecord{}, "", err
	}
	var rec tusRecord
	if err := json.Unmarshal(b, &rec); err != nil || len(b) > maxTusRecord || rec.UploadID == "" {
		return tusRecord{}, "", fmt.Errorf("%w: s3store: load tus upload %q: damaged state (%d bytes): %v", store.ErrBackend, id, len(b), err)
	}
	if !rec.Finished.IsZero() && time.Now().After(rec.Created.Add(tusExpiry)) {
		// Expired; the lifecycle rule removes the record.
		return tusRecord{}, "", notFound(id)
	}
	return rec, etag, nil
}

// putTusRecord writes an upload's state: a new one (ifMatch "") only where
// none is, or over the one read at ifMatch. Losing that race is
// ErrLocked: another request changed the upload meanwhile.
func (s *Store) putTusRecord(ctx context.Context, id string, rec *tusRecord, ifMatch string) (string, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return "", fmt.Errorf("s3store: save tus upload %q: %w", id, err)
	}
	etag, err := s.putIfMatch(ctx, s.tusKey(id, ".json"), b, ifMatch)
	if err != nil {
		mapped := mapError("save tus upload", id, err)
		if ifMatch != "" && errors.Is(mapped, store.ErrExists) {
			return "", fmt.Errorf("%w: s3store: save tus upload %q: it changed meanwhile: %w", store.ErrLocked, id, err)
		}
		if ifMatch != "" && errors.Is(mapped, store.ErrNotFound) {
			return "", fmt.Errorf("%w: s3store: save tus upload %q: it went meanwhile: %w", store.ErrUploadNotFound, id, err)
		}
		return "", mapped
	}
	return etag, nil
}

// Resumable implements store.ResumableStore.
func (s *Store) Resumable(ctx context.Context, id string) (store.Resumable, error) {
	rec, _, err := s.loadTusRecord(ctx, id)
	if err != nil {
		return store.Resumable{}, err
	}
	return rec.resumable(id), nil
}

// Terminate implements store.ResumableStore. An Append under way loses
// its lease's If-Match and stops.
func (s *Store) Terminate(ctx context.Context, id string) error {
	rec, _, err := s.loadTusRecord(ctx, id)
	if err != nil {
		return err
	}
	return s.removeTus(ctx, id, &rec)
}

// removeTus deletes everything of an upload, the state first, so that it
// is gone for every caller from then on, even when the request's context
// is.
func (s *Store) removeTus(ctx context.Context, id string, rec *tusRecord) error {
	ctx = context.WithoutCancel(ctx)
	if err := s.deleteObject(ctx, s.tusKey(id, ".json")); err != nil {
		return fmt.Errorf("s3store: remove tus upload %q: %w", id, err)
	}
	return s.removeTusObjects(ctx, id, rec)
}

// removeTusObjects deletes an upload's bytes, not its state.
func (s *Store) removeTusObjects(ctx context.Context, id string, rec *tusRecord) error {
	ctx = context.WithoutCancel(ctx)
	state := s.tusKey(id, ".json") // which the prefix below matches too
	var errs []error
	if !rec.Assembled {
		errs = append(errs, s.abort(ctx, s.key(rec.Name), rec.UploadID))
	}
	// Every object of the upload: the incomplete
	// part, and any incomplete part an invocation that died before it
	// could record it left behind.
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.tusKey(id, "."))})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			errs = append(errs, mapError("list tus upload", id, err))
			break
		}
		for _, o := range page.Contents {
			if k := aws.ToString(o.Key); k != state {
				errs = append(errs, s.deleteObject(ctx, k))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		// The upload is gone; what is left, the lifecycle rule sweeps.
		return fmt.Errorf("s3store: remove tus upload %q: %w", id, err)
	}
	return nil
}

// Append implements store.ResumableStore.
func (s *Store) Append(ctx context.Context, id string, c store.Chunk) (_ store.Appended, err error) {
	rec, etag, err := s.loadTusRecord(ctx, id)
	if err != nil {
		return store.Appended{}, err
	}
	// The lease below is written If-Match this record's ETag, so the
	// state admitted is the one the chunk goes to.
	if c.Admit != nil {
		if err := c.Admit(rec.resumable(id)); err != nil {
			return store.Appended{}, err
		}
	}
	if !rec.Finished.IsZero() {
		return store.AppendFinished(rec.resumable(id), c)
	}
	now := time.Now()
	switch {
	case rec.Lease.After(now):
		return store.Appended{}, fmt.Errorf("%w: tus upload %s is held until %s", store.ErrLocked, id, rec.Lease.Format(time.RFC3339))
	case c.Offset != rec.Offset:
		return store.Appended{}, fmt.Errorf("%w: tus upload %s is at %d, the chunk is for %d", store.ErrOffsetMismatch, id, rec.Offset, c.Offset)
	}
	if c.Size != store.UnknownSize {
		switch {
		case rec.Size == store.UnknownSize && (c.Size < rec.Offset || c.Size > c.MaxSize || c.Size > rec.PartSize*store.MaxPartCount):
			return store.Appended{}, fmt.Errorf("%w: tus upload %s: size %d declared at offset %d", store.ErrUploadTooLarge, id, c.Size, rec.Offset)
		case rec.Size != store.UnknownSize && c.Size != rec.Size:
			return store.Appended{}, fmt.Errorf("%w: tus upload %s: size %d declared, it has %d", store.ErrInvalidUpload, id, c.Size, rec.Size)
		}
	}

	// Claim the upload: of two requests that read the same state, one
	// writes the lease and the other fails If-Match.
	before := rec
	rec.Lease = s.leaseEnd(ctx, now)
	if c.Size != store.UnknownSize {
		rec.Size = c.Size
	}
	leaseETag, err := s.putTusRecord(ctx, id, &rec, etag)
	if err != nil {
		return store.Appended{}, err
	}
	hold := s.holdTus(ctx, id, rec, leaseETag)
	defer hold.end()
	ctx = hold.ctx
	var newPending string
	release := true
	defer func() {
		leaseETag := hold.stop()
		if err == nil || !release {
			return
		}
		// Give the upload back as it was.
		cleanup := context.WithoutCancel(ctx)
		if newPending != "" {
			s.deleteObject(cleanup, newPending)
		}
		before.Lease = time.Time{}
		if _, perr := s.putTusRecord(cleanup, id, &before, leaseETag); perr != nil && !errors.Is(perr, store.ErrUploadNotFound) {
			err = errors.Join(err, perr)
		}
	}()

	if rec.Assembled {
		// The last chunk again, after its publish failed: its bytes are
		// in the assembled object already.
		n, err := io.Copy(io.Discard, c.Body)
		if err != nil {
			return store.Appended{}, fmt.Errorf("tus upload %s: %w", id, err)
		}
		if rec.Offset+n != rec.Size {
			return store.Appended{}, fmt.Errorf("%w: tus upload %s is assembled; a chunk of %d bytes at %d does not end it", store.ErrUploadMismatch, id, n, rec.Offset)
		}
		release = false
		return s.publishTus(ctx, id, &rec, hold.stop())
	}
	room := c.MaxSize - rec.Offset
	if rec.Size != store.UnknownSize {
		room = rec.Size - rec.Offset
	}
	sum, crc := sha256.New(), store.NewCRC64NVME()
	if err := restoreHash(sum, rec.SHA256); err != nil {
		return store.Appended{}, fmt.Errorf("%w: s3store: tus upload %s: %w", store.ErrBackend, id, err)
	}
	if err := restoreHash(crc, rec.CRC64); err != nil {
		return store.Appended{}, fmt.Errorf("%w: s3store: tus upload %s: %w", store.ErrBackend, id, err)
	}

	// The incomplete part, then the chunk, through one buffer of a part:
	// each full buffer is a part.
	chunk := &hashing{r: io.LimitReader(c.Body, room+1), hashes: []hash.Hash{sum, crc}}
	var src io.Reader = chunk
	if rec.Pending != "" {
		out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &rec.Pending})
		if err != nil {
			return store.Appended{}, mapError("read incomplete part", id, err)
		}
		defer out.Body.Close()
		src = io.MultiReader(io.LimitReader(out.Body, rec.PendingSize), chunk)
	}
	buf := make([]byte, rec.PartSize)
	staging := s.key(rec.Name)
	parts := slices.Clone(rec.Parts)
	var k int
	for {
		var rerr error
		k, rerr = io.ReadFull(src, buf)
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			return store.Appended{}, fmt.Errorf("tus upload %s: %w", id, rerr)
		}
		if chunk.n > room {
			return store.Appended{}, fmt.Errorf("%w: tus upload %s: the chunk is over the %d bytes left", store.ErrUploadTooLarge, id, room)
		}
		if k < len(buf) {
			break
		}
		if len(parts) >= store.MaxPartCount {
			return store.Appended{}, fmt.Errorf("%w: tus upload %s: over %d parts", store.ErrUploadTooLarge, id, store.MaxPartCount)
		}
		p, err := s.uploadTusPart(ctx, id, staging, &rec, int32(len(parts)+1), buf)
		if err != nil {
			return store.Appended{}, err
		}
		parts = append(parts, p)
	}
	if c.Verify != nil {
		if err := c.Verify(); err != nil {
			return store.Appended{}, err
		}
	}
	rec.Offset += chunk.n
	rec.Parts = parts
	last := rec.Offset == rec.Size
	oldPending := rec.Pending
	rec.Pending, rec.PendingSize = "", 0
	switch {
	case last && rec.Size == 0:
		// No part at all: S3 completes no multipart upload without one.
		if err := s.Put(ctx, []store.File{{Name: rec.Name, Body: emptyBody{}}}); err != nil {
			if errors.Is(err, store.ErrExists) {
				release = false
				err = errors.Join(err, s.removeTus(ctx, id, &rec))
			}
			return store.Appended{}, err
		}
		release = false
		empty := sha256.Sum256(nil)
		rec.Digest = hex.EncodeToString(empty[:])
		rec.Whole = store.EncodeCRC64NVME(store.NewCRC64NVME().Sum64())
		return s.publishTus(ctx, id, &rec, hold.stop())
	case last && k > 0:
		p, err := s.uploadTusPart(ctx, id, staging, &rec, int32(len(parts)+1), buf[:k])
		if err != nil {
			return store.Appended{}, err
		}
		rec.Parts = append(rec.Parts, p)
	case !last && k > 0:
		newPending = s.tusKey(id, "."+rand.Text()+".part")
		if _, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &s.bucket, Key: &newPending, Body: bytes.NewReader(buf[:k]), ContentLength: aws.Int64(int64(k)),
		}); err != nil {
			return store.Appended{}, mapError("save incomplete part", id, err)
		}
		rec.Pending, rec.PendingSize = newPending, int64(k)
	}
	if rec.SHA256, err = marshalHash(sum); err == nil {
		rec.CRC64, err = marshalHash(crc)
	}
	if err != nil {
		return store.Appended{}, fmt.Errorf("s3store: tus upload %s: %w", id, err)
	}
	if last {
		if err := s.assembleTus(ctx, id, &rec, crc); err != nil {
			if errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrChecksum) {
				// The name was taken meanwhile, or the bytes are not
				// what was hashed: the upload cannot go on.
				release = false
				return store.Appended{}, errors.Join(err, s.removeTus(ctx, id, &rec))
			}
			return store.Appended{}, err
		}
		release = false
		return s.publishTus(ctx, id, &rec, hold.stop())
	}
	rec.Lease = time.Time{}
	if _, err := s.putTusRecord(ctx, id, &rec, hold.stop()); err != nil {
		return store.Appended{}, err
	}
	newPending = ""
	if oldPending != "" {
		// Best effort: the lifecycle rule sweeps it otherwise.
		s.deleteObject(context.WithoutCancel(ctx), oldPending)
	}
	return store.Appended{Upload: rec.resumable(id)}, nil
}

// leaseEnd is when a lease taken or renewed now ends: a lease later, or
// the invocation's deadline, whichever is sooner.
func (s *Store) leaseEnd(ctx context.Context, now time.Time) time.Time {
	ttl := s.tusLease
	if ttl <= 0 {
		ttl = tusLease
	}
	end := now.Add(ttl)
	if d, ok := ctx.Deadline(); ok && d.Before(end) {
		end = d
	}
	return end.UTC()
}

// tusHold renews an Append's lease until stopped: every third of a lease
// it writes the state it claimed again, with a later lease, If-Match on
// the ETag of its last write. A renewal that fails (the upload was
// terminated, or S3 is out of reach until the lease would end) cancels
// ctx, and the Append stops.
type tusHold struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once

	mu   sync.Mutex
	etag string
}

func (s *Store) holdTus(ctx context.Context, id string, rec tusRecord, etag string) *tusHold {
	ctx, cancel := context.WithCancelCause(ctx)
	h := &tusHold{ctx: ctx, cancel: cancel, quit: make(chan struct{}), done: make(chan struct{}), etag: etag}
	rec.Parts = slices.Clone(rec.Parts)
	every := time.Until(rec.Lease) / 3
	go func() {
		defer close(h.done)
		if every <= 0 {
			return
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-h.quit:
				return
			case <-ctx.Done():
				return
			case now := <-tick.C:
				rec.Lease = s.leaseEnd(ctx, now)
				h.mu.Lock()
				etag, err := s.putTusRecord(ctx, id, &rec, h.etag)
				if err == nil {
					h.etag = etag
				}
				h.mu.Unlock()
				if err != nil {
					cancel(fmt.Errorf("s3store: tus upload %s: renew the lease: %w", id, err))
					return
				}
			}
		}
	}()
	return h
}

// stop ends the renewals and returns the ETag of the state as the last
// one left it, for the Append's own next write. It may be called again;
// ctx stays as it is until end.
func (h *tusHold) stop() string {
	h.once.Do(func() { close(h.quit) })
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.etag
}

// end stops the renewals and releases ctx.
func (h *tusHold) end() {
	h.stop()
	h.cancel(nil)
}

// uploadTusPart uploads one part with its CRC-64/NVME.
func (s *Store) uploadTusPart(ctx context.Context, id, staging string, rec *tusRecord, n int32, b []byte) (tusPart, error) {
	h := store.NewCRC64NVME()
	h.Write(b)
	crc := store.EncodeCRC64NVME(h.Sum64())
	out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: &s.bucket, Key: &staging, UploadId: &rec.UploadID, PartNumber: aws.Int32(n),
		Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b))),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc64nvme, ChecksumCRC64NVME: &crc,
	})
	if err != nil {
		return tusPart{}, mapUploadError("upload tus part", id, err)
	}
	return tusPart{N: n, ETag: aws.ToString(out.ETag), CRC: crc}, nil
}

// assembleTus completes the multipart upload, which S3 checks against the
// whole file's CRC-64/NVME, and records the result in rec.
func (s *Store) assembleTus(ctx context.Context, id string, rec *tusRecord, crc hash.Hash64) error {
	staging := s.key(rec.Name)
	completed := make([]types.CompletedPart, len(rec.Parts))
	for i, p := range rec.Parts {
		completed[i] = types.CompletedPart{PartNumber: aws.Int32(p.N), ETag: aws.String(p.ETag), ChecksumCRC64NVME: aws.String(p.CRC)}
	}
	whole := store.EncodeCRC64NVME(crc.Sum64())
	in := &s3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: &staging, UploadId: &rec.UploadID,
		MultipartUpload:   &types.CompletedMultipartUpload{Parts: completed},
		ChecksumCRC64NVME: &whole, ChecksumType: types.ChecksumTypeFullObject,
	}
	if !s.opts.Overwrite {
		in.IfNoneMatch = aws.String("*")
	}
	out, err := s.client.CompleteMultipartUpload(ctx, in)
	if err != nil {
		return completeError(id, rec.Name, err)
	}
	sum := sha256.New()
	if err := restoreHash(sum, rec.SHA256); err != nil {
		return fmt.Errorf("%w: s3store: tus upload %s: %w", store.ErrBackend, id, err)
	}
	rec.Assembled = true
	rec.AssembledETag = aws.ToString(out.ETag)
	rec.Digest = hex.EncodeToString(sum.Sum(nil))
	rec.Whole = whole
	return nil
}

// publishTus reports the upload published, which its completion at the
// file's key did (or, for an empty file, a Put), replaces its state, held
// at leaseETag, with the finished upload's record, and removes its bytes.
// All but the report is best effort: the file is published.
func (s *Store) publishTus(ctx context.Context, id string, rec *tusRecord, leaseETag string) (store.Appended, error) {
	ctx = context.WithoutCancel(ctx)
	info, herr := s.head(ctx, rec.Name)
	if herr != nil {
		info = store.Info{Name: rec.Name, Size: rec.Size, Modified: time.Now().UTC(), SHA256: rec.Digest}
	}
	done := *rec
	done.Finished = info.Modified.UTC()
	done.Lease = time.Time{}
	done.Assembled = true // nothing left to abort
	done.Parts, done.Pending, done.PendingSize, done.SHA256, done.CRC64 = nil, "", 0, nil, nil
	if _, err := s.putTusRecord(ctx, id, &done, leaseETag); err != nil {
		s.removeTus(ctx, id, rec)
	} else {
		s.removeTusObjects(ctx, id, rec)
	}
	return store.Appended{Upload: done.resumable(id), Done: &store.Finished{Info: info, SHA256: rec.Digest, CRC64NVME: rec.Whole}}, nil
}

// emptyBody is the body of an empty file.
type emptyBody struct{}

func (emptyBody) Size() int64               { return 0 }
func (emptyBody) SHA256() [sha256.Size]byte { return sha256.Sum256(nil) }
func (emptyBody) CRC64NVME() uint64         { return 0 }
func (emptyBody) Reader() *io.SectionReader { return io.NewSectionReader(bytes.NewReader(nil), 0, 0) }

// hashing hashes what is read through it.
type hashing struct {
	r      io.Reader
	hashes []hash.Hash
	n      int64 // bytes read
}

func (h *hashing) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.n += int64(n)
	for _, x := range h.hashes {
		x.Write(p[:n])
	}
	return n, err
}

func restoreHash(h hash.Hash, state []byte) error {
	return h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state)
}

func marshalHash(h hash.Hash) ([]byte, error) {
	return h.(encoding.BinaryMarshaler).MarshalBinary()
}
