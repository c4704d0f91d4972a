package api

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
	"net/http"
	"strconv"
	"strings"
	"time"

	"spillway/apierr"
	"spillway/spool"
	"spillway/store"
	"spillway/wire"
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
)

func (h *Handler) createUpload(w http.ResponseWriter, r *http.Request, x *exchange) error {
	ctx := r.Context()
	var req wire.CreateUploadRequest
	if err := decodeJSON(r, x, createBodyLimit, &req); err != nil {
		return err
	}
	decl := store.Upload{Name: x.name(req.Name), Size: req.Size, PartSize: store.PartSizeFor(req.Size)}
	u, err := h.declareUpload(ctx, x, viaMultipart, decl, req)
	if err != nil {
		return err
	}
	page, err := h.partURLPage(r, u, 1)
	if err != nil {
		// The client never learns the ID, so nobody else would abort it
		// before the sweep.
		if aerr := h.multipart.Abort(context.WithoutCancel(ctx), u.ID); aerr != nil {
			h.log.Warn("abort of a failed upload failed", "upload", u.ID, "error", aerr)
		}
		return err
	}
	w.Header().Set("Location", "/uploads/"+u.ID)
	writeJSON(w, http.StatusCreated, wire.CreatedUpload{UploadInfo: uploadInfo(x, u), PartURLPage: page})
	return nil
}

// declareUpload checks a declaration and creates its upload: the checks of
// docs/MULTIPART.md, in its order, the digest's last, all before anything
// is allocated. The declaration's rules are store.Upload.Validate's.
func (h *Handler) declareUpload(ctx context.Context, x *exchange, via string, decl store.Upload, req wire.CreateUploadRequest) (store.Upload, error) {
	// The declaration's rules are store.Upload.Validate's; the order of the
	// checks is docs/MULTIPART.md's, the digests' last.
	switch err := decl.Validate(); {
	case errors.Is(err, store.ErrUploadTooLarge), err == nil && decl.Size > h.uploadLimit():
		return store.Upload{}, &spool.TooLargeError{Limit: h.uploadLimit(), Size: decl.Size}
	case err != nil:
		return store.Upload{}, err
	}
	if req.PartSize != 0 {
		// The client cut the file itself, to checksum each part.
		decl.PartSize = req.PartSize
		if req.PartSize < store.MinPartSize || req.PartSize > store.MaxPartSize || decl.PartCount() > store.MaxPartCount {
			return store.Upload{}, fmt.Errorf("%w: part_size %d is outside %d..%d or makes over %d parts",
				apierr.ErrBadRequest, req.PartSize, store.MinPartSize, store.MaxPartSize, store.MaxPartCount)
		}
	}
	digests := func() error {
		var err error
		if decl.SHA256, err = store.ParseSHA256(req.SHA256); err != nil {
			return err
		}
		decl.CRC64NVME, decl.PartCRC64NVME = req.CRC64NVME, req.PartCRC64NVME
		return decl.Validate()
	}
	if err := h.admit(ctx, x, admission{via: via, name: decl.Name, size: decl.Size, quota: decl.Size, declared: digests}); err != nil {
		return store.Upload{}, err
	}
	u, err := h.multipart.CreateUpload(ctx, decl)
	if err != nil {
		return store.Upload{}, fmt.Errorf("create upload of %q: %w", decl.Name, err)
	}
	if !store.ValidUploadID(u.ID) {
		if aerr := h.multipart.Abort(context.WithoutCancel(ctx), u.ID); aerr != nil {
			h.log.Warn("abort of a failed upload failed", "upload", u.ID, "error", aerr)
		}
		return store.Upload{}, fmt.Errorf("store returned upload ID %q, which NewUploadID never does", u.ID)
	}
	return u, nil
}

func (h *Handler) uploadState(w http.ResponseWriter, r *http.Request, x *exchange, id string) error {
	u, err := h.ownUpload(r.Context(), x, id)
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
	received := make([]wire.Part, len(parts))
	for i, p := range parts {
		received[i] = wire.Part{Number: p.Number, Size: p.Size, ETag: p.ETag}
	}
	writeJSON(w, http.StatusOK, wire.UploadState{UploadInfo: uploadInfo(x, u), Received: received})
	return nil
}

func (h *Handler) partURLs(w http.ResponseWriter, r *http.Request, x *exchange, id string) error {
	from := 1
	if v := r.URL.Query().Get("from"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("%w: from must be a part number, not %q", apierr.ErrBadRequest, v)
		}
		from = n
	}
	u, err := h.ownUpload(r.Context(), x, id)
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

func (h *Handler) abortUpload(w http.ResponseWriter, r *http.Request, x *exchange, id string) error {
	if !store.ValidUploadID(id) {
		return fmt.Errorf("%w: %q", store.ErrUploadNotFound, id)
	}
	if err := h.checkOwnUpload(r.Context(), x, id); err != nil {
		return err
	}
	if err := h.multipart.Abort(r.Context(), id); err != nil {
		return fmt.Errorf("abort upload %s: %w", id, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) completeUpload(w http.ResponseWriter, r *http.Request, x *exchange, id string) error {
	if !store.ValidUploadID(id) {
		return fmt.Errorf("%w: %q", store.ErrUploadNotFound, id)
	}
	if err := h.checkOwnUpload(r.Context(), x, id); err != nil {
		return err
	}
	var req wire.CompleteRequest
	if err := decodeJSON(r, x, completeBodyLimit, &req); err != nil {
		return err
	}
	parts := make([]store.Part, len(req.Parts))
	for i, p := range req.Parts {
		parts[i] = store.Part{Number: p.Number, ETag: p.ETag}
	}
	c, ct, err := h.complete(r.Context(), x, id, parts)
	if err != nil {
		return err
	}
	res := wire.FileResult{Name: x.shown(c.Name), Size: c.Size, SHA256: c.SHA256, CRC64NVME: c.CRC64NVME, Spool: wire.SpoolParts}
	if c.SHA256Declared {
		res.Declared = []string{"sha256"}
	}
	h.postFinish(r.Context(), x, viaMultipart, c.Name, res, ct)
	w.Header().Set("Location", fileURL(x.shown(c.Name)))
	writeJSON(w, http.StatusCreated, wire.UploadResponse{Files: []wire.FileResult{res}})
	return nil
}

// complete completes multipart upload id from parts, applies the allow
// list to the file it publishes, and counts the file as the exchange's. It
// returns the file and its sniffed type, if the allow list sniffed it.
func (h *Handler) complete(ctx context.Context, x *exchange, id string, parts []store.Part) (store.Completed, string, error) {
	c, err := h.multipart.Complete(ctx, id, parts)
	if err != nil {
		return store.Completed{}, "", fmt.Errorf("complete upload %s: %w", id, err)
	}
	ct, err := h.checkStored(ctx, c.Name)
	if err != nil {
		return store.Completed{}, "", err
	}
	x.spool, x.files, x.stored = wire.SpoolParts, 1, c.Size
	return c, ct, nil
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
	// What the part needs is room in the spool, and in the store unless
	// the upload holds its space there since its creation.
	if err := h.spool.Check(size); err != nil {
		return err
	}
	if sc := h.caps.SpaceChecker; sc != nil && !h.caps.ReservesUploads {
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
	x.spool = b.Location().Kind()
	if b.Size() != size {
		return fmt.Errorf("%w: part %d must be %d bytes, not %d", store.ErrUploadMismatch, n, size, b.Size())
	}
	if n == 1 {
		// The part passes through here: its first bytes are the file's,
		// so a file of a refused type is stopped before it is stored.
		if _, err := h.checkType(b.Reader()); err != nil {
			if aerr := h.multipart.Abort(context.WithoutCancel(ctx), id); aerr != nil {
				h.log.Warn("abort of a refused upload failed", "upload", id, "error", aerr)
			}
			return err
		}
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
	writeJSON(w, http.StatusOK, wire.Part{Number: part.Number, Size: part.Size, ETag: part.ETag})
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
	if !store.ValidUploadID(id) {
		return store.Upload{}, fmt.Errorf("%w: %q", store.ErrUploadNotFound, id)
	}
	u, err := h.multipart.Upload(ctx, id)
	if err != nil {
		return store.Upload{}, fmt.Errorf("upload %s: %w", id, err)
	}
	return u, nil
}

// uploadLimit is the largest upload POST /uploads accepts: the spool's
// limit, which applies to a file sent whole, or what parts can hold.
func (h *Handler) uploadLimit() int64 {
	limit := h.spool.MaxSize()
	if limit == 0 || limit > store.MaxUploadSize {
		limit = store.MaxUploadSize
	}
	return limit
}

func uploadInfo(x *exchange, u store.Upload) wire.UploadInfo {
	return wire.UploadInfo{ID: u.ID, Name: x.shown(u.Name), Size: u.Size, SHA256: u.SHA256, CRC64NVME: u.CRC64NVME, PartSize: u.PartSize, PartCount: u.PartCount()}
}

// partURLPage returns the URLs of parts from, from+1, … (at most
// partsPerPage of them).
func (h *Handler) partURLPage(r *http.Request, u store.Upload, from int) (wire.PartURLPage, error) {
	count := u.PartCount()
	page := wire.PartURLPage{Parts: []wire.PartURL{}}
	if from > count {
		return page, nil
	}
	last := min(count, from+partsPerPage-1)
	if last < count {
		page.NextFrom = last + 1
	}
	expires := time.Now().Add(h.partTTL).Truncate(time.Second).UTC()
	for n := from; n <= last; n++ {
		p, err := h.partURL(r, u, n, expires)
		if err != nil {
			return wire.PartURLPage{}, err
		}
		page.Parts = append(page.Parts, p)
	}
	return page, nil
}

// partURL is where part n goes: the store's presigned URL, or this
// handler's own, signed to expire at expires.
func (h *Handler) partURL(r *http.Request, u store.Upload, n int, expires time.Time) (wire.PartURL, error) {
	if h.presigner != nil {
		pu, err := h.presigner.PresignPart(r.Context(), u, n, h.partTTL)
		if err != nil {
			return wire.PartURL{}, fmt.Errorf("presign part %d of upload %s: %w", n, u.ID, err)
		}
		return wire.PartURL{Number: pu.Number, Size: pu.Size, Method: pu.Method, URL: pu.URL, Headers: pu.Header, Expires: pu.Expires}, nil
	}
	return wire.PartURL{
		Number:  n,
		Size:    u.PartSizeOf(n),
		Method:  http.MethodPut,
		URL:     h.signedPartURL(r, u.ID, n, expires),
		Expires: expires,
	}, nil
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
func (h *Handler) verifyPartURL(r *http.Request) error {
	id := r.PathValue("id")
	n, err := partNumber(r)
	if err != nil {
		return err
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

// decodeJSON reads a small JSON body, whole, into v. Unknown fields and
// anything after the value are refused, so that a typo is an error rather
// than a silently dropped setting.
func decodeJSON(r *http.Request, x *exchange, limit int64, v any) error {
	if r.ContentLength > limit {
		return fmt.Errorf("%w: a JSON body of %d bytes, over the %d-byte limit", spool.ErrTooLarge, r.ContentLength, limit)
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return x.body.cause(fmt.Errorf("%w: read the JSON body: %w", apierr.ErrBadRequest, err))
	}
	if int64(len(data)) > limit {
		return fmt.Errorf("%w: a JSON body over the %d-byte limit", spool.ErrTooLarge, limit)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: JSON body: %v", apierr.ErrBadRequest, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: JSON body: data after the object", apierr.ErrBadRequest)
	}
	return nil
}
