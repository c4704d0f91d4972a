// Package api is Spillway's HTTP API: one http.Handler, served as it is by
// the local server and through an event adapter by the Lambda function. It
// validates a request completely before reading its body, spools the body,
// and hands it to a store.
package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"spillway/internal/formdata"
	"spillway/spool"
	"spillway/store"
	"spillway/web"
)

// DefaultMaxParts caps the parts of one multipart request, as mime/multipart
// does for ParseMultipartForm since CVE-2023-24536.
const DefaultMaxParts = 1000

// Config configures the handler.
type Config struct {
	Spooler *spool.Spooler
	Store   store.Store
	Logger  *slog.Logger // nil: slog.Default()
	// ReadTimeout aborts a body that sends nothing for this long. Zero means
	// no limit. It needs a transport that supports read deadlines.
	ReadTimeout time.Duration
	// MaxParts caps the parts of a multipart request. Zero: DefaultMaxParts.
	MaxParts int
	// MaxConcurrentUploads caps uploads in progress at once; past it, an
	// upload is refused with 503 busy before its body is read. Zero means
	// no cap.
	MaxConcurrentUploads int
	// MaxConcurrentListings caps GET /files pages being made at once; past
	// it, a listing is refused with 503 busy. Each page holds up to a page
	// of entries per folder it reads and up to 1 MiB of JSON, outside the
	// memory budget for bodies. Zero means DefaultMaxConcurrentListings,
	// a negative value no cap.
	MaxConcurrentListings int
	// Token, when set, is a shared secret every request but /healthz must
	// carry as "Authorization: Bearer <token>". It is checked before the
	// body is read.
	Token string
	// Observer, when set, is told about every request (for metrics).
	Observer Observer
	// ProgressInterval is how often a body still arriving is logged. Zero
	// means DefaultProgressInterval; short uploads log nothing.
	ProgressInterval time.Duration
	// UploadSecret is the HMAC-SHA256 key of the part URLs the handler
	// signs itself, for a store that takes parts through the handler
	// (store.PartWriter). Empty means a random key, so those URLs stop
	// working when the process ends.
	UploadSecret []byte
	// PartURLTTL is how long a part URL stays valid. Zero means
	// DefaultPartURLTTL.
	PartURLTTL time.Duration
	// Version and Revision are what GET /healthz reports the server is:
	// its build's module version and VCS revision, each left out when
	// empty.
	Version, Revision string
}

// DefaultMaxConcurrentListings is Config.MaxConcurrentListings' default: a
// page takes milliseconds to make, so a few at a time keep listings
// flowing while bounding their memory.
const DefaultMaxConcurrentListings = 4

// DefaultProgressInterval spaces the progress lines of long uploads.
const DefaultProgressInterval = 5 * time.Second

// Observer is told what the handler does. Its methods must be quick and
// safe for concurrent use.
type Observer interface {
	// UploadStarted and UploadDone bracket the handling of every upload
	// request that passed the token and the upload cap.
	UploadStarted()
	UploadDone()
	// RequestDone is called once per request, after the response.
	RequestDone(Outcome)
}

// Outcome describes one finished request.
type Outcome struct {
	Method        string
	Upload        bool   // PUT /files/{name}, POST /files, a part PUT, or POST /uploads/{id}/complete
	Status        int    // the status written
	Code          string // the error code, "" on success
	Spool         string // "memory", "disk", "mixed", "parts" (a completion), or "" when nothing was spooled
	Files         int    // files stored
	BytesReceived int64  // body bytes read
	BytesStored   int64  // bytes of the files stored
	Duration      time.Duration
}

// health is the body of GET /healthz.
type health struct {
	Status   string `json:"status"`
	Version  string `json:"version,omitempty"`
	Revision string `json:"revision,omitempty"`
}

// Handler serves the upload API.
type Handler struct {
	spool       *spool.Spooler
	store       store.Store
	log         *slog.Logger
	readTimeout time.Duration
	maxParts    int
	token       []byte
	slots       chan struct{} // nil: uploads are not capped
	listSlots   chan struct{} // nil: listings are not capped
	observer    Observer
	progress    time.Duration
	health      health

	// Multipart uploads: multipart is nil when the store cannot take them;
	// exactly one of presigner and partWriter is set when it can.
	multipart  store.Multipart
	presigner  store.PartPresigner
	partWriter store.PartWriter
	uploadKey  []byte
	partTTL    time.Duration
}

// New returns the API handler.
func New(cfg Config) *Handler {
	h := &Handler{
		spool:       cfg.Spooler,
		store:       cfg.Store,
		log:         cfg.Logger,
		readTimeout: cfg.ReadTimeout,
		maxParts:    cfg.MaxParts,
		health:      health{Status: "ok", Version: cfg.Version, Revision: cfg.Revision},
	}
	if cfg.Token != "" {
		h.token = []byte(cfg.Token)
	}
	h.observer = cfg.Observer
	h.progress = cfg.ProgressInterval
	if h.progress <= 0 {
		h.progress = DefaultProgressInterval
	}
	if cfg.MaxConcurrentUploads > 0 {
		h.slots = make(chan struct{}, cfg.MaxConcurrentUploads)
	}
	switch n := cfg.MaxConcurrentListings; {
	case n == 0:
		h.listSlots = make(chan struct{}, DefaultMaxConcurrentListings)
	case n > 0:
		h.listSlots = make(chan struct{}, n)
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.maxParts <= 0 {
		h.maxParts = DefaultMaxParts
	}
	h.setupMultipart(cfg)
	return h
}

func (h *Handler) setupMultipart(cfg Config) {
	mp, ok := cfg.Store.(store.Multipart)
	if !ok {
		return
	}
	// A presigning store takes the parts itself, so the handler serves no
	// part PUT even when the store could also write parts.
	if ps, ok := cfg.Store.(store.PartPresigner); ok {
		h.presigner = ps
	} else if pw, ok := cfg.Store.(store.PartWriter); ok {
		h.partWriter = pw
	} else {
		return
	}
	h.multipart = mp
	h.uploadKey = bytes.Clone(cfg.UploadSecret)
	if len(h.uploadKey) == 0 {
		h.uploadKey = make([]byte, 32)
		rand.Read(h.uploadKey)
	}
	h.partTTL = cfg.PartURLTTL
	if h.partTTL <= 0 {
		h.partTTL = DefaultPartURLTTL
	}
}

// FileResult is one stored file in a 201 response.
type FileResult struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// CRC64NVME is the base64 of the bytes' big-endian CRC-64/NVME, as S3
	// shows it in x-amz-checksum-crc64nvme, so that it compares with S3's
	// own value of the object unconverted.
	CRC64NVME string `json:"crc64nvme,omitempty"`
	Spool     string `json:"spool"`
	// Declared names the fields above whose values the client declared
	// and nobody checked against the bytes: "sha256" for a multipart
	// upload to S3, whose bytes the server never sees. Every value not
	// named was computed from the bytes or verified against them.
	Declared []string `json:"declared,omitempty"`
}

// UploadResponse is the body of a 201.
type UploadResponse struct {
	Files []FileResult `json:"files"`
}

// exchange is what the log line says about one request.
type exchange struct {
	start  time.Time
	id     string // the request ID
	w      *responseWriter
	body   *requestBody
	spool  string
	code   string // the error code of a refused request
	err    error  // the detail of a refusal, which the client does not see
	files  int    // files stored
	stored int64  // their bytes
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x, r := h.begin(w, r)
	h.end(x, r, h.route(x.w, r, x))
}

// Refuse answers err for a request that an entrypoint refuses before it
// reaches ServeHTTP, exactly as ServeHTTP would: a request ID, the code's
// fixed message, the log line with the detail, and the observer.
func (h *Handler) Refuse(w http.ResponseWriter, r *http.Request, err error) {
	x, r := h.begin(w, r)
	h.end(x, r, err)
}

// begin gives the request its ID and wraps its body and response.
func (h *Handler) begin(w http.ResponseWriter, r *http.Request) (*exchange, *http.Request) {
	start := time.Now()
	x := &exchange{start: start, w: &responseWriter{ResponseWriter: w}}
	x.body = &requestBody{
		r: r.Body, rc: http.NewResponseController(x.w), timeout: h.readTimeout,
		log: h.log, every: h.progress, start: start, lastLog: start,
		method: r.Method, path: r.URL.EscapedPath(), total: r.ContentLength,
	}
	// Every request has an ID a user can quote: the Lambda request ID when
	// the entrypoint set one, a fresh one otherwise.
	x.id = RequestID(r.Context())
	if x.id == "" {
		x.id = rand.Text()
	}
	// A copy of the request carries the wrapped body: net/http inspects the
	// original's Body after the handler (an unread Expect: 100-continue body
	// must close the connection, not be read), so that one stays as it was.
	r = r.WithContext(WithRequestID(r.Context(), x.id))
	if r.Body != nil {
		r.Body = x.body
	}
	x.w.Header().Set("X-Request-Id", x.id)
	return x, r
}

// end answers err, when the handler failed, and logs and reports the
// request. The client gets the code's fixed message; the log line gets the
// detail, under the request ID the client sees.
func (h *Handler) end(x *exchange, r *http.Request, err error) {
	if err != nil {
		if clientWentAway(r.Context(), err) {
			err = fmt.Errorf("%w: %w", errClientGone, err)
		}
		e := *ErrorFor(err)
		e.RequestID = x.id
		x.code, x.err = e.Code, err
		writeError(x.w, &e)
	}
	// A transport that buffers the response may refuse it as too large;
	// it then answers that error, and so does the log line.
	if errors.Is(x.w.err, ErrResponseTooLarge) {
		e := ErrorFor(x.w.err)
		x.w.status, x.code, x.err = e.Status, e.Code, x.w.err
	}

	// A refusal is the client's business (info) unless the server failed
	// it (error); a client gone is the client's too.
	level := slog.LevelInfo
	if x.w.status >= 500 {
		level = slog.LevelError
	}
	method, path := r.Method, r.URL.EscapedPath()
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("path", path),
		slog.Int("status", x.w.status),
		slog.Int64("bytes", x.body.n),
		slog.String("spool", x.spool),
		slog.Duration("duration", time.Since(x.start)),
		slog.String("request_id", x.id),
	}
	if x.code != "" {
		attrs = append(attrs, slog.String("code", x.code))
	}
	if x.err != nil {
		attrs = append(attrs, slog.String("error", x.err.Error()))
	}
	h.log.LogAttrs(r.Context(), level, "request", attrs...)
	if h.observer != nil {
		h.observer.RequestDone(Outcome{
			Method:        method,
			Upload:        isUpload(method, path),
			Status:        x.w.status,
			Code:          x.code,
			Spool:         x.spool,
			Files:         x.files,
			BytesReceived: x.body.n,
			BytesStored:   x.stored,
			Duration:      time.Since(x.start),
		})
	}
}

// clientWentAway reports a failure that comes from the request's context
// being cancelled while the server was not shutting down: net/http cancels
// it when the client closes the connection, while an entrypoint that
// shuts down cancels it with ErrUnavailable as its cause.
func clientWentAway(ctx context.Context, err error) bool {
	if !errors.Is(err, context.Canceled) || ctx.Err() == nil {
		return false
	}
	cause := context.Cause(ctx)
	return errors.Is(cause, context.Canceled) && !errors.Is(cause, ErrUnavailable)
}

// route dispatches on the escaped path, so that names are decoded exactly
// once, here, and a hostile name gets a 400 rather than a redirect.
func (h *Handler) route(w http.ResponseWriter, r *http.Request, x *exchange) error {
	p := r.URL.EscapedPath()
	switch {
	case p == "/healthz" || p == "/":
		// The page and the health check are public: the page asks for the
		// token itself.
	case h.isPartPut(r.Method, p):
		// A part URL is its own credential, handed out to token holders;
		// it is checked where the token would be.
		if err := h.verifyPartURL(r, p); err != nil {
			return err
		}
	case !h.authorized(r):
		w.Header().Set("WWW-Authenticate", `Bearer realm="spillway"`)
		return ErrUnauthorized
	}
	if isUpload(r.Method, p) && h.slots != nil {
		select {
		case h.slots <- struct{}{}:
			defer func() { <-h.slots }()
		default:
			return fmt.Errorf("%w: %d uploads already in progress", errBusy, cap(h.slots))
		}
	}
	if isUpload(r.Method, p) && h.observer != nil {
		h.observer.UploadStarted()
		defer h.observer.UploadDone()
	}
	switch {
	case p == "/":
		if !allow(w, r, http.MethodGet, http.MethodHead) {
			return errMethod
		}
		web.ServePage(w, r)
		return nil
	case p == "/healthz":
		if !allow(w, r, http.MethodGet, http.MethodHead) {
			return errMethod
		}
		writeJSON(w, http.StatusOK, h.health)
		return nil
	case p == "/files" || p == "/files/" && r.Method != http.MethodPut:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return h.list(w, r)
		case http.MethodPost:
			return h.postMultipart(w, r, x)
		}
		allow(w, r, http.MethodGet, http.MethodHead, http.MethodPost)
		return errMethod
	case strings.HasPrefix(p, "/files/"):
		name, err := url.PathUnescape(p[len("/files/"):])
		if err != nil {
			return fmt.Errorf("%w: %v", store.ErrInvalidName, err)
		}
		switch r.Method {
		case http.MethodPut:
			return h.putRaw(w, r, x, name)
		case http.MethodGet, http.MethodHead:
			return h.download(w, r, name)
		case http.MethodDelete:
			return h.deleteFile(w, r, name)
		}
		allow(w, r, http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete)
		return errMethod
	case p == "/uploads" || strings.HasPrefix(p, "/uploads/"):
		return h.routeUploads(w, r, x, p)
	}
	return fmt.Errorf("%w: %s", errRouteNotFound, p)
}

// isUpload reports the requests that carry or publish a file's bytes: they
// take an upload slot and count as uploads in metrics. A part PUT spools a
// body like a raw upload, and a completion publishes a whole file.
func isUpload(method, p string) bool {
	switch method {
	case http.MethodPut:
		if strings.HasPrefix(p, "/files/") {
			return true
		}
		_, _, ok := partPath(p)
		return ok
	case http.MethodPost:
		return p == "/files" || p == "/files/" ||
			strings.HasPrefix(p, "/uploads/") && strings.HasSuffix(p, "/complete") && strings.Count(p, "/") == 3
	}
	return false
}

// Authorized reports whether r carries the configured bearer token (or no
// token is configured), for routes an entrypoint serves beside the API.
func (h *Handler) Authorized(r *http.Request) bool { return h.authorized(r) }

// authorized checks the bearer token in constant time.
func (h *Handler) authorized(r *http.Request) bool {
	if h.token == nil {
		return true
	}
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && strings.EqualFold(scheme, "Bearer") &&
		subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), h.token) == 1
}

func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	return false
}

// deleteFile removes the file name: 204, or 404 not_found when no file
// has that name (a folder is not a file).
func (h *Handler) deleteFile(w http.ResponseWriter, r *http.Request, name string) error {
	if err := store.ValidateName(name); err != nil {
		return err
	}
	if err := h.store.Delete(r.Context(), name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// putRaw stores the request body under name. Everything that can refuse
// the upload runs before the first read of the body, which is also what
// holds back Go's "100 Continue".
func (h *Handler) putRaw(w http.ResponseWriter, r *http.Request, x *exchange, name string) error {
	ctx := r.Context()
	size := r.ContentLength
	if err := store.ValidateName(name); err != nil {
		return err
	}
	if err := h.spool.Check(size); err != nil {
		return err
	}
	if err := h.store.Check(ctx, name, size); err != nil {
		return err
	}
	b, err := h.spool.Spool(ctx, r.Body, size)
	if err != nil {
		return x.body.cause(err)
	}
	defer b.Close()
	x.spool = b.Location().String()
	if err := h.store.Put(ctx, []store.File{{Name: name, Body: b}}); err != nil {
		return err
	}
	resp := UploadResponse{Files: []FileResult{result(name, b)}}
	x.files, x.stored = 1, b.Size()
	// Release the spool before answering: a client that sees the 201 sees
	// a clean spool directory too.
	if err := b.Close(); err != nil {
		h.log.Warn("spool cleanup failed", "error", err)
	}
	w.Header().Set("Location", fileURL(name))
	writeJSON(w, http.StatusCreated, resp)
	return nil
}

// postMultipart spools every file part, then publishes them together.
func (h *Handler) postMultipart(w http.ResponseWriter, r *http.Request, x *exchange) error {
	ctx := r.Context()
	mt, params, perr := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if perr != nil || mt != "multipart/form-data" {
		return errUnsupportedMT
	}
	boundary := params["boundary"]
	if boundary == "" {
		return fmt.Errorf("%w: Content-Type has no boundary", errBadMultipart)
	}
	if r.ContentLength > 0 {
		// The parts' sizes are unknown, but together they are under the
		// body's: if the body does not fit, neither will its files.
		if err := h.spool.CheckSpace(r.ContentLength); err != nil {
			return err
		}
		if sc, ok := h.store.(store.SpaceChecker); ok {
			if err := sc.CheckSpace(ctx, r.ContentLength); err != nil {
				return err
			}
		}
	}

	// A batch keeps the descriptors of a request with many files bounded
	// while its client sends them: each file that goes to disk is closed
	// once written, and opened again just before the files are published.
	batch := h.spool.NewBatch()
	defer batch.Close()
	var files []store.File
	names := make(map[string]bool)
	// formdata rather than mime/multipart: it scans large buffers for the
	// delimiter, several times faster for big file parts, keeps
	// mime/multipart's header limits, and reports a body cut before its
	// closing delimiter as an error, not as a clean end.
	mr := formdata.NewReader(r.Body, boundary, formdata.Limits{MaxParts: h.maxParts})
	defer mr.Close()
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if errors.Is(err, formdata.ErrTooManyParts) {
			return fmt.Errorf("%w: more than %d parts", errBadMultipart, h.maxParts)
		}
		if errors.Is(err, formdata.ErrMalformed) || errors.Is(err, formdata.ErrHeaderTooLarge) {
			return x.body.cause(err)
		}
		if err != nil {
			return x.body.cause(fmt.Errorf("%w: %w", errBadMultipart, err))
		}
		name, err := partFileName(part.Header)
		if err != nil {
			return err
		}
		if name == "" {
			continue // a plain form field; NextPart skips its bytes
		}
		// Two files under one name would leave one of them lost, or
		// overwritten by the other, however the store orders them: the
		// request is refused whole, whether the server overwrites or not.
		if names[name] {
			return fmt.Errorf("%w: two file parts are named %q", errBadMultipart, name)
		}
		names[name] = true
		if err := h.store.Check(ctx, name, -1); err != nil {
			return err
		}
		b, err := batch.Spool(ctx, part, -1)
		if err != nil {
			return x.body.cause(multipartCause(err))
		}
		files = append(files, store.File{Name: name, Body: b})
		x.spool = joinSpool(x.spool, b.Location().String())
	}
	if len(files) == 0 {
		return errNoFiles
	}
	if err := batch.Open(); err != nil {
		return err
	}
	if err := h.store.Put(ctx, files); err != nil {
		return err
	}
	resp := UploadResponse{Files: make([]FileResult, 0, len(files))}
	for _, f := range files {
		resp.Files = append(resp.Files, result(f.Name, f.Body))
		x.files++
		x.stored += f.Body.Size()
	}
	if err := batch.Close(); err != nil {
		h.log.Warn("spool cleanup failed", "error", err)
	}
	if len(files) == 1 {
		w.Header().Set("Location", fileURL(files[0].Name))
	}
	writeJSON(w, http.StatusCreated, resp)
	return nil
}

// partFileName returns the base name a file part is stored under, or ""
// for a part that is not a file. The name comes from filename* or filename
// as formdata.DispositionFileName decodes them, which refuses what it
// cannot decode rather than take the part for a form field. Unlike
// Part.FileName, it then checks the name as sent: a base name is taken
// from a plain relative path, but a traversal, an absolute path or a
// backslash is refused, not quietly cut.
func partFileName(header textproto.MIMEHeader) (string, error) {
	raw, err := formdata.DispositionFileName(header.Get("Content-Disposition"))
	if err != nil {
		return "", err
	}
	if raw == "" {
		return "", nil
	}
	if err := store.ValidateName(raw); err != nil {
		return "", err
	}
	return path.Base(raw), nil
}

// multipartCause calls a part that ends early, or that its transfer
// encoding cannot decode, malformed: the transport's own failures, a client
// gone among them, are recovered by requestBody.cause.
func multipartCause(err error) error {
	switch {
	case errors.Is(err, spool.ErrIncomplete):
		return fmt.Errorf("%w: a part ends without its closing boundary", errBadMultipart)
	case errors.Is(err, spool.ErrRead):
		// A part's own decoding failed (quoted-printable, say).
		return fmt.Errorf("%w: %w", errBadMultipart, err)
	}
	return err
}

func joinSpool(acc, loc string) string {
	if acc == "" || acc == loc {
		return loc
	}
	return "mixed"
}

// download serves GET and HEAD of a stored file. HEAD is answered from
// the file's metadata, also where GET redirects: a URL presigned for GET is
// refused for HEAD.
func (h *Handler) download(w http.ResponseWriter, r *http.Request, name string) error {
	ctx := r.Context()
	if err := store.ValidateName(name); err != nil {
		return err
	}
	if r.Method == http.MethodHead {
		info, err := h.store.Stat(ctx, name)
		if err != nil {
			return err
		}
		if _, remote := h.store.(store.Presigner); info.SHA256 == "" && !remote && wantsSHA256(r) {
			if info, err = h.hashStored(ctx, name); err != nil {
				return err
			}
		}
		setDownloadHeaders(w, name, info)
		serveContent(w, r, name, info, io.NewSectionReader(noContent{}, 0, info.Size))
		return nil
	}
	if p, ok := h.store.(store.Presigner); ok {
		u, err := p.PresignGet(ctx, name, downloadHeaders(name))
		if err != nil {
			return err
		}
		redirect(w, u)
		return nil
	}
	info, rc, err := h.store.Open(ctx, name)
	if err != nil {
		return err
	}
	defer rc.Close()
	setDownloadHeaders(w, name, info)
	serveContent(w, r, name, info, rc)
	return nil
}

func result(name string, b *spool.Body) FileResult {
	sum := b.SHA256()
	return FileResult{Name: name, Size: b.Size(), SHA256: hex.EncodeToString(sum[:]),
		CRC64NVME: store.EncodeCRC64NVME(b.CRC64NVME()), Spool: b.Location().String()}
}

// fileURL is the escaped path of a stored file.
func fileURL(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "/files/" + strings.Join(segs, "/")
}

// requestBody counts the bytes of a request body, keeps the transport's own
// read error, and pushes the read deadline forward before each read, so a
// body is aborted after ReadTimeout without a byte, however long it runs.
type requestBody struct {
	r       io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	n       int64
	err     error

	// Progress logging for long uploads.
	log          *slog.Logger
	every        time.Duration
	start        time.Time
	lastLog      time.Time
	method, path string
	total        int64 // -1 when unknown
}

func (b *requestBody) Read(p []byte) (int, error) {
	now := time.Now()
	if b.timeout > 0 {
		// ErrNotSupported (Lambda events, tests' recorders) leaves the
		// body without an idle limit, which is all those transports need.
		_ = b.rc.SetReadDeadline(now.Add(b.timeout))
	}
	if now.Sub(b.lastLog) >= b.every {
		b.lastLog = now
		b.logProgress(now)
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

func (b *requestBody) Close() error { return b.r.Close() }

func (b *requestBody) logProgress(now time.Time) {
	elapsed := now.Sub(b.start)
	attrs := []slog.Attr{
		slog.String("method", b.method),
		slog.String("path", b.path),
		slog.Int64("bytes", b.n),
		slog.Float64("mb_per_s", float64(b.n)/1e6/elapsed.Seconds()),
		slog.Duration("elapsed", elapsed),
	}
	if b.total >= 0 {
		attrs = append(attrs, slog.Int64("expected", b.total))
	}
	b.log.LogAttrs(context.Background(), slog.LevelInfo, "upload progress", attrs...)
}

// cause prefers the transport's failure (a client gone, a read timeout) over
// what a parser made of it, so that a disconnect is not called malformed.
func (b *requestBody) cause(err error) error {
	var netErr net.Error
	switch {
	case b.err == nil:
		return err
	case clientGone(b.err):
		return fmt.Errorf("%w: %w", spool.ErrIncomplete, b.err)
	case errors.Is(err, spool.ErrTooLarge):
		return err
	case errors.Is(b.err, os.ErrDeadlineExceeded), errors.Is(b.err, ErrBadRequest):
		return b.err
	case errors.As(b.err, &netErr):
		// The connection failed under the body: the client is gone.
		return fmt.Errorf("%w: %w", spool.ErrIncomplete, b.err)
	}
	// What is left is the framing itself: a malformed chunk, an oversized
	// trailer. net/http's errors for those are not exported.
	return fmt.Errorf("%w: malformed body: %w", ErrBadRequest, b.err)
}

// clientGone reports the read errors of a client that went away mid-body:
// a clean close (unexpected EOF) or a reset (a killed client, a browser
// abort).
func clientGone(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// responseWriter records the status, and the first write error, for the
// log line. Unwrap keeps http.ResponseController working through it.
type responseWriter struct {
	http.ResponseWriter
	status int
	err    error
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type requestIDKey struct{}

// WithRequestID returns a context whose requests log id as request_id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the id set by WithRequestID, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
