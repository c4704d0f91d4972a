package api

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"spillway/apierr"
	"spillway/spool"
	"spillway/store"
	"spillway/wire"
)

// The tus 1.0.0 routes (docs/TUS.md): resumable uploads for the clients
// that speak tus (tus-js-client, Uppy's tus plugin, the mobile clients).
// The protocol is written here rather than taken from tusd's handler,
// which implements no checksum extension, answers its errors in plain
// text, and locks with in-process or file lockers that a function has
// no use for; the store's ResumableStore keeps the state where each
// entrypoint can share it.

const (
	tusVersion    = "1.0.0"
	tusExtensions = "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum"
	tusChecksums  = "sha1,sha256,crc32"
	// offsetOctetStream is the Content-Type of a tus chunk.
	offsetOctetStream = "application/offset+octet-stream"
	// maxMetadata bounds Upload-Metadata, which the store keeps and HEAD
	// returns.
	maxMetadata = 4 << 10
)

// The result of a finished tus upload, in headers as well as in the JSON
// body a tus client does not read.
const (
	headerStoredFile = "Spillway-File"
	headerSHA256     = "Spillway-Sha256"
	headerCRC64NVME  = "Spillway-Crc64nvme"
)

var (
	errTusVersion        = apierr.New(wire.CodeTusVersion, "unsupported Tus-Resumable")
	errTusNotFound       = apierr.New(wire.CodeTusUploadNotFound, "no such tus upload")
	errTusMediaType      = apierr.New(wire.CodeTusMediaType, "Content-Type must be application/offset+octet-stream")
	errChecksumAlgorithm = apierr.New(wire.CodeChecksumAlgorithm, "unsupported or malformed Upload-Checksum")
)

// tusRoutes are the tus routes, for the route table.
func (h *Handler) tusRoutes() []route {
	if h.caps.Resumable == nil {
		return nil
	}
	options := func(w http.ResponseWriter, _ *http.Request, _ *exchange) error {
		hdr := w.Header()
		hdr.Set("Tus-Version", tusVersion)
		hdr.Set("Tus-Extension", tusExtensions)
		hdr.Set("Tus-Checksum-Algorithm", tusChecksums)
		hdr.Set("Tus-Max-Size", strconv.FormatInt(h.uploadLimit(), 10))
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	id := func(serve func(http.ResponseWriter, *http.Request, *exchange, string) error) func(http.ResponseWriter, *http.Request, *exchange) error {
		return func(w http.ResponseWriter, r *http.Request, x *exchange) error {
			return serve(w, r, x, r.PathValue("id"))
		}
	}
	opt := []string{http.MethodOptions}
	return []route{
		{pattern: "/tus/", methods: post, auth: authToken, upload: true, serve: tus(h.tusCreate)},
		{pattern: "/tus/", methods: opt, auth: authPublic, serve: tus(options)},
		{pattern: "/tus/{id}", methods: []string{http.MethodHead}, auth: authToken, serve: tus(id(h.tusHead))},
		{pattern: "/tus/{id}", methods: []string{http.MethodPatch}, auth: authToken, upload: true, serve: tus(id(h.tusPatch))},
		{pattern: "/tus/{id}", methods: del, auth: authToken, serve: tus(id(h.tusTerminate))},
		{pattern: "/tus/{id}", methods: opt, auth: authPublic, serve: tus(options)},
	}
}

// tus wraps a tus route: every answer says the version, and every request
// but OPTIONS must speak it. An upload the store does not know is tus's
// own 404.
func tus(serve func(http.ResponseWriter, *http.Request, *exchange) error) func(http.ResponseWriter, *http.Request, *exchange) error {
	return func(w http.ResponseWriter, r *http.Request, x *exchange) error {
		w.Header().Set("Tus-Resumable", tusVersion)
		if r.Method != http.MethodOptions && r.Header.Get("Tus-Resumable") != tusVersion {
			w.Header().Set("Tus-Version", tusVersion)
			return fmt.Errorf("%w: %q", errTusVersion, r.Header.Get("Tus-Resumable"))
		}
		err := serve(w, r, x)
		if errors.Is(err, store.ErrUploadNotFound) {
			err = fmt.Errorf("%w: %w", errTusNotFound, err)
		}
		return err
	}
}

// methodOverride applies X-HTTP-Method-Override to a tus request: tus
// clients send it from environments that can only POST.
func methodOverride(r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.EscapedPath(), "/tus/") {
		return
	}
	switch m := r.Header.Get("X-HTTP-Method-Override"); m {
	case http.MethodPatch, http.MethodDelete, http.MethodHead, http.MethodOptions:
		r.Method = m
	}
}

// tusCreate is the creation extension, with creation-with-upload and
// creation-defer-length. Everything that can refuse the upload (the name,
// the size, the space) runs before anything is allocated or read.
func (h *Handler) tusCreate(w http.ResponseWriter, r *http.Request, x *exchange) error {
	ctx := r.Context()
	size, err := tusLength(r, true)
	if err != nil {
		return err
	}
	meta := r.Header.Get("Upload-Metadata")
	if len(meta) > maxMetadata {
		return fmt.Errorf("%w: Upload-Metadata of %d bytes", apierr.ErrBadRequest, len(meta))
	}
	fields, err := parseMetadata(meta)
	if err != nil {
		return err
	}
	name, ok := fields["filename"]
	if !ok {
		return fmt.Errorf("%w: Upload-Metadata has no filename", store.ErrInvalidName)
	}
	name = x.name(name)
	if err := store.ValidateName(name); err != nil {
		return err
	}
	if size > h.uploadLimit() {
		return &spool.TooLargeError{Limit: h.uploadLimit(), Size: size}
	}
	withBody := r.ContentLength > 0 || r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody
	var sum *checksum
	if withBody {
		if err := tusContentType(r); err != nil {
			return err
		}
		if sum, err = parseChecksum(r.Header.Get("Upload-Checksum")); err != nil {
			return err
		}
		if size >= 0 && r.ContentLength > size {
			return fmt.Errorf("%w: a body of %d bytes for an upload of %d", store.ErrUploadTooLarge, r.ContentLength, size)
		}
	}
	if err := h.admit(ctx, x, admission{via: viaTus, name: name, size: size, quota: size}); err != nil {
		return err
	}
	u, err := h.caps.Resumable.CreateResumable(ctx, store.Resumable{Name: name, Size: size, Metadata: meta})
	if err != nil {
		return fmt.Errorf("create tus upload of %q: %w", name, err)
	}
	if !store.ValidUploadID(u.ID) {
		return fmt.Errorf("store returned tus upload ID %q, which NewUploadID never does", u.ID)
	}
	hdr := w.Header()
	hdr.Set("Location", "/tus/"+u.ID)
	hdr.Set("Upload-Expires", u.Expires.Format(http.TimeFormat))
	if withBody || size == 0 {
		// An empty file is finished as soon as it is created.
		a, err := h.tusAppend(r, x, u.ID, 0, store.UnknownSize, sum, nil)
		if err != nil {
			// The client has no URL to resume with: nothing is kept.
			if terr := h.caps.Resumable.Terminate(context.WithoutCancel(ctx), u.ID); terr != nil && !errors.Is(terr, store.ErrUploadNotFound) {
				h.log.Warn("terminate of a failed tus creation failed", "upload", u.ID, "error", terr)
			}
			hdr.Del("Location")
			hdr.Del("Upload-Expires")
			return err
		}
		if err := h.tusFinished(r.Context(), x, a); err != nil {
			hdr.Del("Location")
			hdr.Del("Upload-Expires")
			return err
		}
		tusResult(w, x, a)
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

// tusHead is the core protocol's HEAD: where to resume.
func (h *Handler) tusHead(w http.ResponseWriter, r *http.Request, x *exchange, id string) error {
	if !store.ValidUploadID(id) {
		return fmt.Errorf("%w: malformed ID", store.ErrUploadNotFound)
	}
	u, err := h.caps.Resumable.Resumable(r.Context(), id)
	if err != nil {
		return err
	}
	if err := h.checkOwnResumable(x, u); err != nil {
		return err
	}
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Upload-Offset", strconv.FormatInt(u.Offset, 10))
	if u.Size == store.UnknownSize {
		hdr.Set("Upload-Defer-Length", "1")
	} else {
		hdr.Set("Upload-Length", strconv.FormatInt(u.Size, 10))
	}
	if u.Metadata != "" {
		hdr.Set("Upload-Metadata", u.Metadata)
	}
	hdr.Set("Upload-Expires", u.Expires.Format(http.TimeFormat))
	if u.Done != nil {
		// A client resuming a URL it stored finds the upload complete.
		resultHeaders(hdr, x, u.Done)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// tusPatch is the core protocol's PATCH: one chunk at the upload's offset.
func (h *Handler) tusPatch(w http.ResponseWriter, r *http.Request, x *exchange, id string) error {
	if !store.ValidUploadID(id) {
		return fmt.Errorf("%w: malformed ID", store.ErrUploadNotFound)
	}
	if err := tusContentType(r); err != nil {
		return err
	}
	offset, err := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || offset < 0 {
		return fmt.Errorf("%w: Upload-Offset %q", apierr.ErrBadRequest, r.Header.Get("Upload-Offset"))
	}
	size, err := tusLength(r, false)
	if err != nil {
		return err
	}
	sum, err := parseChecksum(r.Header.Get("Upload-Checksum"))
	if err != nil {
		return err
	}
	// The store gives the upload's state to admit once it holds the
	// upload, before the body is read (and before Go sends a 100
	// Continue): a wrong offset or an oversized chunk is refused unread,
	// by the state the chunk would go to.
	var u store.Resumable
	admit := func(got store.Resumable) error {
		if err := h.checkOwnResumable(x, got); err != nil {
			return err
		}
		if got.Size == store.UnknownSize && size >= 0 {
			// A length declared now is the quota's to check.
			if err := h.checkQuota(r.Context(), x, size); err != nil {
				return err
			}
		}
		if offset != got.Offset {
			return fmt.Errorf("%w: tus upload %s is at %d, the chunk is for %d", store.ErrOffsetMismatch, id, got.Offset, offset)
		}
		if got.Size == store.UnknownSize {
			got.Size = size
		}
		if got.Size >= 0 && r.ContentLength > got.Size-offset {
			return fmt.Errorf("%w: a chunk of %d bytes with %d left", store.ErrUploadTooLarge, r.ContentLength, got.Size-offset)
		}
		u = got
		return nil
	}
	a, err := h.tusAppend(r, x, id, offset, size, sum, admit)
	if err != nil {
		return err
	}
	if u.Done == nil {
		if err := h.tusFinished(r.Context(), x, a); err != nil {
			return err
		}
	}
	tusResult(w, x, a)
	if u.Done != nil {
		// The last answer again, for a client that lost it: nothing was
		// stored this time, and the hook heard of the file already.
		x.files, x.stored = 0, 0
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// tusAppend hands the request's body to the store as one chunk, which
// admit, if not nil, checks against the upload's state first.
func (h *Handler) tusAppend(r *http.Request, x *exchange, id string, offset, size int64, sum *checksum, admit func(store.Resumable) error) (store.Appended, error) {
	body := io.Reader(r.Body)
	if offset == 0 && !h.allow.Any() {
		// The file's first bytes: their type is checked before the store
		// keeps any of them, and after it admitted the chunk.
		body = &sniffOnRead{h: h, r: body}
	}
	c := store.Chunk{Offset: offset, Size: size, Body: body, MaxSize: h.uploadLimit(), KeepPartial: true, Admit: admit}
	if sum != nil {
		c.Body = io.TeeReader(body, sum.h)
		c.Verify = sum.verify
		c.KeepPartial = false
	}
	a, err := h.caps.Resumable.Append(r.Context(), id, c)
	switch {
	case errors.Is(err, errTypeNotAllowed):
		// The first bytes decide, so the upload can never finish: nothing
		// of it is kept.
		if terr := h.caps.Resumable.Terminate(context.WithoutCancel(r.Context()), id); terr != nil && !errors.Is(terr, store.ErrUploadNotFound) {
			h.log.Warn("terminate of a refused tus upload failed", "upload", id, "error", terr)
		}
		return a, err
	case err != nil:
		return a, x.body.cause(fmt.Errorf("tus upload %s: %w", id, err))
	}
	return a, nil
}

// sniffOnRead checks the type of a tus upload's first bytes at the first
// Read: the store reads the body only once it admitted the chunk, so a
// chunk it refuses (not this client's upload, the wrong offset) is never
// read, nor is the upload it names terminated for it.
type sniffOnRead struct {
	h   *Handler
	r   io.Reader
	err error
	// sniffed: r is the body with its first bytes checked, or err is set.
	sniffed bool
}

func (b *sniffOnRead) Read(p []byte) (int, error) {
	if !b.sniffed {
		b.sniffed = true
		b.r, b.err = b.h.sniffedBody(b.r)
	}
	if b.err != nil {
		return 0, b.err
	}
	return b.r.Read(p)
}

// tusFinished checks the type of a finished upload's file, whose first
// chunk may have been too short to tell, and tells the hook.
func (h *Handler) tusFinished(ctx context.Context, x *exchange, a store.Appended) error {
	if a.Done == nil {
		return nil
	}
	ct, err := h.checkStored(ctx, a.Done.Name)
	if err != nil {
		return err
	}
	h.postFinish(ctx, x, viaTus, a.Done.Name, wire.FileResult{Name: x.shown(a.Done.Name), Size: a.Done.Size, SHA256: a.Done.SHA256, CRC64NVME: a.Done.CRC64NVME}, ct)
	return nil
}

// tusResult sets the headers of a chunk's answer.
func tusResult(w http.ResponseWriter, x *exchange, a store.Appended) {
	hdr := w.Header()
	hdr.Set("Upload-Offset", strconv.FormatInt(a.Upload.Offset, 10))
	if a.Done == nil {
		hdr.Set("Upload-Expires", a.Upload.Expires.Format(http.TimeFormat))
		return
	}
	x.files, x.stored = 1, a.Done.Size
	resultHeaders(hdr, x, a.Done)
}

// resultHeaders names a finished upload's file, as the client sees it.
func resultHeaders(hdr http.Header, x *exchange, f *store.Finished) {
	hdr.Set(headerStoredFile, fileURL(x.shown(f.Name)))
	hdr.Set(headerSHA256, f.SHA256)
	hdr.Set(headerCRC64NVME, f.CRC64NVME)
}

// tusTerminate is the termination extension.
func (h *Handler) tusTerminate(w http.ResponseWriter, r *http.Request, x *exchange, id string) error {
	if !store.ValidUploadID(id) {
		return fmt.Errorf("%w: malformed ID", store.ErrUploadNotFound)
	}
	if x.space != "" {
		u, err := h.caps.Resumable.Resumable(r.Context(), id)
		if err != nil {
			return err
		}
		if err := h.checkOwnResumable(x, u); err != nil {
			return err
		}
	}
	if err := h.caps.Resumable.Terminate(r.Context(), id); err != nil {
		return fmt.Errorf("terminate tus upload %s: %w", id, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// tusLength reads Upload-Length, or, on a creation, Upload-Defer-Length:
// 1 (store.UnknownSize). A PATCH without one is store.UnknownSize too.
func tusLength(r *http.Request, create bool) (int64, error) {
	v, deferred := r.Header.Get("Upload-Length"), r.Header.Get("Upload-Defer-Length")
	switch {
	case v != "" && deferred != "":
		return 0, fmt.Errorf("%w: both Upload-Length and Upload-Defer-Length", apierr.ErrBadRequest)
	case v != "":
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%w: Upload-Length %q", apierr.ErrBadRequest, v)
		}
		return n, nil
	case create && deferred != "1":
		return 0, fmt.Errorf("%w: neither Upload-Length nor Upload-Defer-Length: 1", apierr.ErrBadRequest)
	}
	return store.UnknownSize, nil
}

func tusContentType(r *http.Request) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != offsetOctetStream {
		return fmt.Errorf("%w: %q", errTusMediaType, r.Header.Get("Content-Type"))
	}
	return nil
}

// parseMetadata reads Upload-Metadata: comma-separated pairs of a key and
// its value in base64, or a key alone.
func parseMetadata(s string) (map[string]string, error) {
	fields := make(map[string]string)
	if strings.TrimSpace(s) == "" {
		return fields, nil
	}
	for pair := range strings.SplitSeq(s, ",") {
		key, value, _ := strings.Cut(strings.TrimSpace(pair), " ")
		if key == "" || strings.ContainsAny(value, " ") {
			return nil, fmt.Errorf("%w: malformed Upload-Metadata", apierr.ErrBadRequest)
		}
		if _, dup := fields[key]; dup {
			return nil, fmt.Errorf("%w: Upload-Metadata repeats a key", apierr.ErrBadRequest)
		}
		b, err := base64.StdEncoding.DecodeString(value)
		if err != nil {
			return nil, fmt.Errorf("%w: Upload-Metadata value of %q is not base64", apierr.ErrBadRequest, key)
		}
		fields[key] = string(b)
	}
	return fields, nil
}

// checksum is a chunk's Upload-Checksum: the hash that sees the body as
// it is read, and the digest it must end with.
type checksum struct {
	algorithm string
	h         hash.Hash
	want      []byte
}

func parseChecksum(v string) (*checksum, error) {
	if v == "" {
		return nil, nil
	}
	algorithm, digest, _ := strings.Cut(strings.TrimSpace(v), " ")
	c := &checksum{algorithm: algorithm}
	switch algorithm {
	case "sha1":
		c.h = sha1.New()
	case "sha256":
		c.h = sha256.New()
	case "crc32":
		c.h = crc32.NewIEEE()
	default:
		return nil, fmt.Errorf("%w: algorithm %q", errChecksumAlgorithm, algorithm)
	}
	want, err := base64.StdEncoding.DecodeString(digest)
	if err != nil || len(want) != c.h.Size() {
		return nil, fmt.Errorf("%w: a %s digest of %q", errChecksumAlgorithm, algorithm, digest)
	}
	c.want = want
	return c, nil
}

func (c *checksum) verify() error {
	if got := c.h.Sum(nil); subtle.ConstantTimeCompare(got, c.want) != 1 {
		return fmt.Errorf("%w: %s of the chunk is %s, Upload-Checksum says %s", store.ErrChunkChecksum, c.algorithm,
			base64.StdEncoding.EncodeToString(got), base64.StdEncoding.EncodeToString(c.want))
	}
	return nil
}
