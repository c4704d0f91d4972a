package api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"spillway/spool"
	"spillway/store"
)

// The /uploads routes of docs/MULTIPART.md: files too large for one request
// (a Function URL takes about 4.7 MB) are sent in parts, while names,
// limits and auth stay with this handler.

// DefaultPartURLTTL is how long a part URL stays valid unless
// Config.PartURLTTL says otherwise.
const DefaultPartURLTTL = time.Hour

const (
	// partsPerPage bounds one response's part URLs: 10,000 presigned URLs
	// would be a response of several megabytes, over a Function URL's cap.
	partsPerPage = 500
	// createBodyLimit and completeBodyLimit cap the JSON bodies, which are
	// read whole into memory: a create is one object with at most
	// MaxPartCount part checksums of about 15 bytes each, a completion at
	// most MaxPartCount entries of about 100 bytes each.
	createBodyLimit   = 256 << 10
	completeBodyLimit = 2 << 20
	// maxUploadIDLen bounds the IDs accepted from a path before any store
	// sees them.
	maxUploadIDLen = 512
	// spoolParts is the spool a completed upload reports: its bytes came
	// through earlier requests, one part at a time.
	spoolParts = "parts"
)

// CreateUploadRequest is the body of POST /uploads.
type CreateUploadRequest struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	// CRC64NVME is the whole file's, in FileResult.CRC64NVME's form. On
	// S3 it is the checksum S3 verifies when the upload completes.
	CRC64NVME string `json:"crc64nvme,omitempty"`
	// PartSize, when set, is the part size the client cut the file into
	// to compute PartCRC64NVME; zero lets the server choose.
	PartSize int64 `json:"part_size,omitempty"`
	// PartCRC64NVME, when set, holds each part's CRC64NVME, part n at
	// n-1, so that a part whose bytes do not match is refused when sent.
	PartCRC64NVME []string `json:"part_crc64nvme,omitempty"`
}

// UploadInfo describes an upload in progress.
type UploadInfo struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256,omitempty"`    // omitted when none was declared
	CRC64NVME string `json:"crc64nvme,omitempty"` // omitted when none was declared
	PartSize  int64  `json:"part_size"`
	PartCount int    `json:"part_count"`
}

// PartURLPage is one page of part URLs: GET /uploads/{id}/parts.
type PartURLPage struct {
	Parts []store.PartURL `json:"parts"`
	// NextFrom is the first part number of the next page; 0 when none.
	NextFrom int `json:"next_from"`
}

// CreatedUpload is the body of POST /uploads's 201: the upload and the
// first page of its part URLs.
type CreatedUpload struct {
	UploadInfo
	PartURLPage
}

// UploadState is the body of GET /uploads/{id}: what a client needs to
// resume.
type UploadState struct {
	UploadInfo
	Received []store.Part `json:"received"`
}

// CompleteRequest is the body of POST /uploads/{id}/complete.
type CompleteRequest struct {
	Parts []CompletePart `json:"parts"`
}

// CompletePart names one part to complete with.
type CompletePart struct {
	Number int    `json:"n"`
	ETag   string `json:"etag"`
}

// routeUploads serves everything under /uploads. The token, or for a part
// PUT the signature, was checked by route.
func (h *Handler) routeUploads(w http.ResponseWriter, r *http.Request, x *exchange, p string) error {
	if h.multipart == nil {
		return errNoMultipart
	}
	if p == "/uploads" {
		if !allow(w, r, http.MethodPost) {
			return errMethod
		}
		return h.createUpload(w, r, x)
	}
	id, rest, _ := strings.Cut(p[len("/uploads/"):], "/")
	switch {
	case rest == "":
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return h.uploadState(w, r, id)
		case http.MethodDelete:
			return h.abortUpload(w, r, id)
		}
		allow(w, r, http.MethodGet, http.MethodHead, http.MethodDelete)
		return errMethod
	case rest == "parts":
		if !allow(w, r, http.MethodGet, http.MethodHead) {
			return errMethod
		}
		return h.partURLs(w, r, id)
	case rest == "complete":
		if !allow(w, r, http.MethodPost) {
			return errMethod
		}
		return h.completeUpload(w, r, x, id)
	case strings.HasPrefix(rest, "parts/") && h.partWriter != nil:
		if !allow(w, r, http.MethodPut) {
			return errMethod
		}
		n, err := strconv.Atoi(rest[len("parts/"):])
		if err != nil {
			// route verified the signature, which covers n: unreachable
			// unless the two parsers disagree.
			return fmt.Errorf("%w: part number %q", errBadSignature, rest[len("parts/"):])
		}
		return h.putPart(w, r, x, id, n)
	}
	return fmt.Errorf("%w: %s", errRouteNotFound, p)
}

// partPath splits the escaped path of a part PUT, /uploads/{id}/parts/{n}.
func partPath(p string) (id, n string, ok bool) {
	tail, ok := strings.CutPrefix(p, "/uploads/")
	if !ok {
		return "", "", false
	}
	id, rest, _ := strings.Cut(tail, "/")
	n, ok = strings.CutPrefix(rest, "parts/")
	return id, n, ok
}

// isPartPut reports whether r is a part PUT that this handler serves: one
// whose signed URL, not the token, is its credential.
func (h *Handler) isPartPut(method, p string) bool {
	if h.partWriter == nil || method != http.MethodPut {
		return false
	}
	_, _, ok := partPath(p)
	return ok
}

func (h *Handler) createUpload(w http.ResponseWriter, r *http.Request, x *exchange) error {
	ctx := r.Context()
	var req CreateUploadRequest
	if err := decodeJSON(r, x, createBodyLimit, &req); err != nil {
		return err
	}
	if err := store.ValidateName(req.Name); err != nil {
		return err
	}
	if req.Size < 1 {
		return fmt.Errorf("%w: size must be at least 1, not %d", ErrBadRequest, req.Size)
	}
	// MaxPartCount parts of MaxPartSize bytes is the most any part size
	// can cover: past it there is no valid cut.
	limit := h.spool.MaxSize()
	if limit == 0 || limit > store.MaxPartCount*store.MaxPartSize {
		limit = store.MaxPartCount * store.MaxPartSize
	}
	if req.Size > limit {
		return &spool.TooLargeError{Limit: limit, Size: req.Size}
	}
	if err := h.store.Check(ctx, req.Name, req.Size); err != nil {
		return err
	}
	sum, err := parseSHA256(req.SHA256)
	if err != nil {
		return err
	}
	if req.CRC64NVME != "" {
		if _, err := store.ParseCRC64NVME(req.CRC64NVME); err != nil {
			return fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
	}
	decl := store.Upload{Name: req.Name, Size: req.Size, SHA256: sum, CRC64NVME: req.CRC64NVME,
		PartSize: store.PartSizeFor(req.Size), PartCRC64NVME: req.PartCRC64NVME}
	if req.PartSize != 0 {
		decl.PartSize = req.PartSize
		if req.PartSize < store.MinPartSize || req.PartSize > store.MaxPartSize || decl.PartCount() > store.MaxPartCount {
			return fmt.Errorf("%w: part_size %d is outside %d..%d or makes over %d parts",
				ErrBadRequest, req.PartSize, store.MinPartSize, store.MaxPartSize, store.MaxPartCount)
		}
	}
	if err := decl.CheckPartCRC64NVME(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}

	u, err := h.multipart.CreateUpload(ctx, decl)
	if err != nil {
		return fmt.Errorf("create upload of %q: %w", req.Name, err)
	}
	var page PartURLPage
	if validUploadID(u.ID) {
		page, err = h.partURLPage(r, u, 1)
	} else {
		err = fmt.Errorf("store returned upload ID %q, which is not URL-safe", u.ID)
	}
	if err != nil {
		// The client never learns the ID, so nobody else would abort it
		// before the sweep.
		if aerr := h.multipart.Abort(context.WithoutCancel(ctx), u.ID); aerr != nil {
			h.log.Warn("abort of a failed upload failed", "upload", u.ID, "error", aerr)
		}
		return err
	}
	w.Header().Set("Location", "/uploads/"+u.ID)
	writeJSON(w, http.StatusCreated, CreatedUpload{UploadInfo: uploadInfo(u), PartURLPage: page})
	return nil
}

func (h *Handler) uploadState(w http.ResponseWriter, r *http.Request, id string) error {
	u, err := h.upload(r.Context(), id)
	if err != nil {
		return err
	}
	parts, err := h.multipart.ListParts(r.Context(), id)
	if err != nil {
		return fmt.Errorf("list parts of upload %s: %w", id, err)
	}
	if parts == nil {
		parts = []store.Part{}
	}
	writeJSON(w, http.StatusOK, UploadState{UploadInfo: uploadInfo(u), Received: parts})
	return nil
}

func (h *Handler) partURLs(w http.ResponseWriter, r *http.Request, id string) error {
	from := 1
	if v := r.URL.Query().Get("from"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("%w: from must be a part number, not %q", ErrBadRequest, v)
		}
		from = n
	}
	u, err := h.upload(r.Context(), id)
	if err != nil {
		return err
	}
	page, err := h.partURLPage(r, u, from)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

func (h *Handler) abortUpload(w http.ResponseWriter, r *http.Request, id string) error {
	if !validUploadID(id) {
		return fmt.Errorf("%w: %q", store.ErrUploadNotFound, id)
	}
	if err := h.multipart.Abort(r.Context(), id); err != nil {
		return fmt.Errorf("abort upload %s: %w", id, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) completeUpload(w http.ResponseWriter, r *http.Request, x *exchange, id string) error {
	if !validUploadID(id) {
		return fmt.Errorf("%w: %q", store.ErrUploadNotFound, id)
	}
	var req CompleteRequest
	if err := decodeJSON(r, x, completeBodyLimit, &req); err != nil {
		return err
	}
	parts := make([]store.Part, len(req.Parts))
	for i, p := range req.Parts {
		parts[i] = store.Part{Number: p.Number, ETag: p.ETag}
	}
	c, err := h.multipart.Complete(r.Context(), id, parts)
	if err != nil {
		return fmt.Errorf("complete upload %s: %w", id, err)
	}
	x.spool, x.files, x.stored = spoolParts, 1, c.Size
	res := FileResult{Name: c.Name, Size: c.Size, SHA256: c.SHA256, CRC64NVME: c.CRC64NVME, Spool: spoolParts}
	if c.SHA256Declared {
		res.Declared = []string{"sha256"}
	}
	w.Header().Set("Location", fileURL(c.Name))
	writeJSON(w, http.StatusCreated, UploadResponse{Files: []FileResult{res}})
	return nil
}

// putPart stores one part sent to a URL this handler signed. Like putRaw,
// it refuses whatever it can before the first read of the body.
func (h *Handler) putPart(w http.ResponseWriter, r *http.Request, x *exchange, id string, n int) error {
	ctx := r.Context()
	u, err := h.upload(ctx, id)
	if err != nil {
		return err
	}
	size := u.PartSizeOf(n)
	if size < 0 {
		return fmt.Errorf("%w: upload %s has no part %d", store.ErrUploadMismatch, id, n)
	}
	if r.ContentLength >= 0 && r.ContentLength != size {
		return fmt.Errorf("%w: part %d must be %d bytes, not %d", store.ErrUploadMismatch, n, size, r.ContentLength)
	}
	if sc, ok := h.store.(store.SpaceChecker); ok {
		if err := sc.CheckSpace(ctx, size); err != nil {
			return err
		}
	}
	body := io.Reader(r.Body)
	if r.ContentLength < 0 {
		// A chunked part is cut off at its size rather than spooled whole
		// and refused afterwards.
		body = &partLimiter{r: r.Body, left: size, n: n, size: size}
	}
	b, err := h.spool.Spool(ctx, body, r.ContentLength)
	if err != nil {
		return x.body.cause(err)
	}
	defer b.Close()
	x.spool = b.Location().String()
	if b.Size() != size {
		return fmt.Errorf("%w: part %d must be %d bytes, not %d", store.ErrUploadMismatch, n, size, b.Size())
	}
	if want, got := u.PartCRC64NVMEOf(n), store.EncodeCRC64NVME(b.CRC64NVME()); want != "" && got != want {
		// As S3 refuses a part whose signed CRC64NVME does not match; the
		// upload stays, for the part to be sent again.
		return fmt.Errorf("%w: part %d of upload %s: CRC64NVME %s, %s declared", store.ErrChecksum, n, id, got, want)
	}
	part, err := h.partWriter.PutPart(ctx, id, n, b)
	if err != nil {
		return fmt.Errorf("store part %d of upload %s: %w", n, id, err)
	}
	// As in putRaw: a client that sees the answer sees a clean spool.
	if err := b.Close(); err != nil {
		h.log.Warn("spool cleanup failed", "error", err)
	}
	w.Header().Set("ETag", part.ETag)
	writeJSON(w, http.StatusOK, part)
	return nil
}

// partLimiter fails a body that runs past its part's size.
type partLimiter struct {
	r       io.Reader
	left    int64
	n       int
	size    int64
	scratch [1]byte
}

func (l *partLimiter) Read(p []byte) (int, error) {
	if l.left == 0 {
		// One more byte, or the end, tells a body of exactly size bytes
		// from a longer one.
		k, err := l.r.Read(l.scratch[:])
		if k > 0 {
			return 0, fmt.Errorf("%w: part %d runs past its %d bytes", store.ErrUploadMismatch, l.n, l.size)
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	k, err := l.r.Read(p)
	l.left -= int64(k)
	return k, err
}

// upload returns the upload with this ID. An ID that could not have come
// from a store never reaches one.
func (h *Handler) upload(ctx context.Context, id string) (store.Upload, error) {
	if !validUploadID(id) {
		return store.Upload{}, fmt.Errorf("%w: %q", store.ErrUploadNotFound, id)
	}
	u, err := h.multipart.Upload(ctx, id)
	if err != nil {
		return store.Upload{}, fmt.Errorf("upload %s: %w", id, err)
	}
	return u, nil
}

// validUploadID accepts the RFC 3986 unreserved characters, which is what
// "URL-safe" promises, so an ID needs no escaping in a path and cannot
// carry a path separator.
func validUploadID(id string) bool {
	if id == "" || id == "." || id == ".." || len(id) > maxUploadIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

func uploadInfo(u store.Upload) UploadInfo {
	return UploadInfo{ID: u.ID, Name: u.Name, Size: u.Size, SHA256: u.SHA256, CRC64NVME: u.CRC64NVME, PartSize: u.PartSize, PartCount: u.PartCount()}
}

// partURLPage returns the URLs of parts from, from+1, … (at most
// partsPerPage of them).
func (h *Handler) partURLPage(r *http.Request, u store.Upload, from int) (PartURLPage, error) {
	count := u.PartCount()
	page := PartURLPage{Parts: []store.PartURL{}}
	if from > count {
		return page, nil
	}
	last := min(count, from+partsPerPage-1)
	if last < count {
		page.NextFrom = last + 1
	}
	expires := time.Now().Add(h.partTTL).Truncate(time.Second).UTC()
	for n := from; n <= last; n++ {
		if h.presigner != nil {
			pu, err := h.presigner.PresignPart(r.Context(), u, n, h.partTTL)
			if err != nil {
				return PartURLPage{}, fmt.Errorf("presign part %d of upload %s: %w", n, u.ID, err)
			}
			page.Parts = append(page.Parts, pu)
			continue
		}
		page.Parts = append(page.Parts, store.PartURL{
			Number:  n,
			Size:    u.PartSizeOf(n),
			Method:  http.MethodPut,
			URL:     h.signedPartURL(r, u.ID, n, expires),
			Expires: expires,
		})
	}
	return page, nil
}

// signedPartURL is the URL of part n, signed by this handler: absolute, so
// that a client uses it as it uses S3's.
func (h *Handler) signedPartURL(r *http.Request, id string, n int, expires time.Time) string {
	exp := expires.Unix()
	u := fmt.Sprintf("/uploads/%s/parts/%d?expires=%d&sig=%x", id, n, exp, h.partSignature(id, n, exp))
	if r.Host == "" {
		// An HTTP/1.0 request may name no host: a relative URL is still
		// one the client can resolve against its own.
		return u
	}
	return requestScheme(r) + "://" + r.Host + u
}

// requestScheme is the scheme the client used: TLS here, or the one a
// proxy in front reports.
func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	if strings.EqualFold(strings.TrimSpace(proto), "https") {
		return "https"
	}
	return "http"
}

// partSignature signs a part URL's method, upload, part and expiry. The
// fields cannot run into each other: IDs hold no newline.
func (h *Handler) partSignature(id string, n int, expires int64) []byte {
	m := hmac.New(sha256.New, h.uploadKey)
	fmt.Fprintf(m, "%s\n%s\n%d\n%d", http.MethodPut, id, n, expires)
	return m.Sum(nil)
}

// verifyPartURL checks the signature and expiry of a part PUT, in place of
// the token, before the upload cap and before the body.
func (h *Handler) verifyPartURL(r *http.Request, p string) error {
	id, ns, _ := partPath(p)
	n, err := strconv.Atoi(ns)
	if err != nil || n < 1 {
		return fmt.Errorf("%w: part number %q", errBadSignature, ns)
	}
	q := r.URL.Query()
	exp, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: missing or malformed expires", errBadSignature)
	}
	sig, err := hex.DecodeString(q.Get("sig"))
	if err != nil || len(sig) == 0 {
		return fmt.Errorf("%w: missing or malformed sig", errBadSignature)
	}
	if !hmac.Equal(sig, h.partSignature(id, n, exp)) {
		return fmt.Errorf("%w: the signature does not match the URL", errBadSignature)
	}
	if time.Now().Unix() > exp {
		return fmt.Errorf("%w: the URL expired at %s", errBadSignature, time.Unix(exp, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// parseSHA256 checks a declared digest and returns it in lower case; ""
// when none was declared.
func parseSHA256(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if len(s) != 2*sha256.Size {
		return "", fmt.Errorf("%w: sha256 must be 64 hex digits", ErrBadRequest)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("%w: sha256 must be 64 hex digits", ErrBadRequest)
	}
	return strings.ToLower(s), nil
}

// decodeJSON reads a small JSON body, whole, into v. Unknown fields and
// anything after the value are refused, so that a typo is an error rather
// than a silently dropped setting.
func decodeJSON(r *http.Request, x *exchange, limit int64, v any) error {
	if r.ContentLength > limit {
		return fmt.Errorf("%w: a JSON body of %d bytes, over the %d-byte limit", spool.ErrTooLarge, r.ContentLength, limit)
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return x.body.cause(fmt.Errorf("%w: read the JSON body: %w", ErrBadRequest, err))
	}
	if int64(len(data)) > limit {
		return fmt.Errorf("%w: a JSON body over the %d-byte limit", spool.ErrTooLarge, limit)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: JSON body: %v", ErrBadRequest, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: JSON body: data after the object", ErrBadRequest)
	}
	return nil
}
