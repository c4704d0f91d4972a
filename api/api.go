// Package api is Spillway's HTTP API: one http.Handler, served as it is by
// the local server and through an event adapter by the Lambda function. It
// validates a request completely before reading its body, spools the body,
// and hands it to a store.
package api

import (
	"bytes"
	"context"
	"crypto/rand"
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

	"spillway/apierr"
	"spillway/internal/formdata"
	"spillway/internal/sniff"
	"spillway/spool"
	"spillway/store"
	"spillway/wire"
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
	// Authenticator, when set, verifies the bearer tokens that are not
	// Token (JWTs): the request then acts for the token's user, inside the
	// user's space when the token names one (principal.go).
	Authenticator Authenticator
	// UserQuota, when positive, caps the bytes a user with a space stores;
	// an upload that would pass it is refused before its body is read.
	UserQuota int64
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
	// Retention, when set, is how long the store keeps a file after its
	// modification time; the listing gives each file's expiry from it.
	// The handler removes nothing: the local server's sweep and S3's
	// lifecycle rule do.
	Retention time.Duration
	// Version and Revision are what GET /healthz reports the server is:
	// its build's module version and VCS revision, each left out when
	// empty.
	Version, Revision string
	// Metrics, when set, serves GET /metrics, under the token rule unless
	// MetricsPublic is set. Nil: there is no /metrics route.
	Metrics       http.Handler
	MetricsPublic bool
	// Hooks, when set, is asked before every upload creates anything and
	// told after every file is published.
	Hooks Hooks
	// AllowTypes, unless it accepts every type, refuses a file whose
	// first bytes sniff as a type it does not name, and stores the
	// sniffed type with the file.
	AllowTypes sniff.Rules
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
	Route         string     // the route's pattern, such as "/files/{name...}"; "" for a path no route has
	Upload        bool       // PUT /files/{name}, POST /files, a part PUT, or POST /uploads/{id}/complete
	Status        int        // the status written
	Code          wire.Code  // the error code, "" on success
	Spool         wire.Spool // where the body was held; SpoolParts for a completion
	Files         int        // files stored
	BytesReceived int64      // body bytes read
	BytesStored   int64      // bytes of the files stored
	Duration      time.Duration
}

// Handler serves the upload API.
type Handler struct {
	spool       *spool.Spooler
	store       store.Store
	log         *slog.Logger
	readTimeout time.Duration
	maxParts    int
	token       []byte
	auth        Authenticator
	quota       int64
	slots       chan struct{} // nil: uploads are not capped
	listSlots   chan struct{} // nil: listings are not capped
	observer    Observer
	progress    time.Duration
	health      wire.Health
	retention   time.Duration
	hooks       Hooks       // nil: no hook
	allow       sniff.Rules // the zero value: every type

	// caps are the store's optional features, asked once.
	caps store.Caps
	// Multipart uploads: multipart is nil when the store cannot take them;
	// exactly one of presigner and partWriter is set when it can.
	multipart  store.Multipart
	presigner  store.PartPresigner
	partWriter store.PartWriter
	uploadKey  []byte
	partTTL    time.Duration

	table *table
}

// New returns the API handler.
func New(cfg Config) *Handler {
	h := &Handler{
		spool:       cfg.Spooler,
		store:       cfg.Store,
		caps:        cfg.Store.Capabilities(),
		log:         cfg.Logger,
		readTimeout: cfg.ReadTimeout,
		maxParts:    cfg.MaxParts,
		health:      wire.Health{Status: "ok", Version: cfg.Version, Revision: cfg.Revision},
		retention:   max(cfg.Retention, 0),
		hooks:       cfg.Hooks,
		allow:       cfg.AllowTypes,
	}
	if cfg.Token != "" {
		h.token = []byte(cfg.Token)
	}
	h.auth, h.quota = cfg.Authenticator, cfg.UserQuota
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
	h.table = newTable(h.routes(cfg))
	return h
}

func (h *Handler) setupMultipart(cfg Config) {
	// The key also signs the form URLs of a server with JWTs and no token,
	// whatever its store.
	h.uploadKey = bytes.Clone(cfg.UploadSecret)
	if len(h.uploadKey) == 0 {
		h.uploadKey = make([]byte, 32)
		rand.Read(h.uploadKey)
	}
	h.partTTL = cfg.PartURLTTL
	if h.partTTL <= 0 {
		h.partTTL = DefaultPartURLTTL
	}
	if h.caps.Multipart == nil {
		return
	}
	// A presigning store takes the parts itself, so the handler serves no
	// part PUT even when the store could also write parts.
	if h.caps.PartPresigner != nil {
		h.presigner = h.caps.PartPresigner
	} else if h.caps.PartWriter != nil {
		h.partWriter = h.caps.PartWriter
	} else {
		return
	}
	h.multipart = h.caps.Multipart
}

// exchange is what the log line says about one request.
type exchange struct {
	start  time.Time
	id     string // the request ID
	match  match  // the request's route
	w      *responseWriter
	body   *requestBody
	spool  wire.Spool
	code   wire.Code // the error code of a refused request
	err    error     // the detail of a refusal, which the client does not see
	files  int       // files stored
	stored int64     // their bytes
	// user is the verified subject of the request's JWT, empty for the
	// shared token or none; space is the folder its names live in,
	// "<claim>/", or empty for the whole store.
	user, space string
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x, r := h.begin(w, r)
	h.end(x, r, h.dispatch(x.w, r, x))
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
	x.id = apierr.RequestID(r.Context())
	if x.id == "" {
		x.id = rand.Text()
	}
	// A copy of the request carries the wrapped body: net/http inspects the
	// original's Body after the handler (an unread Expect: 100-continue body
	// must close the connection, not be read), so that one stays as it was.
	r = r.WithContext(apierr.WithRequestID(r.Context(), x.id))
	methodOverride(r)
	x.match = h.table.match(r.Method, r.URL.EscapedPath())
	x.match.setPathValues(r)
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
		e.Write(x.w)
	}
	// A transport that buffers the response may refuse it as too large;
	// it then answers that error, and so does the log line.
	if errors.Is(x.w.err, apierr.ErrResponseTooLarge) {
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
		slog.String("spool", string(x.spool)),
		slog.Duration("duration", time.Since(x.start)),
		slog.String("request_id", x.id),
	}
	if x.user != "" {
		attrs = append(attrs, slog.String("user", x.user))
	}
	if x.code != "" {
		attrs = append(attrs, slog.String("code", string(x.code)))
	}
	if x.err != nil {
		attrs = append(attrs, slog.String("error", x.err.Error()))
	}
	h.log.LogAttrs(r.Context(), level, "request", attrs...)
	if h.observer != nil {
		h.observer.RequestDone(Outcome{
			Method:        method,
			Route:         x.match.label(),
			Upload:        x.match.route != nil && x.match.route.upload,
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
// shuts down cancels it with apierr.ErrUnavailable as its cause.
func clientWentAway(ctx context.Context, err error) bool {
	if !errors.Is(err, context.Canceled) || ctx.Err() == nil {
		return false
	}
	cause := context.Cause(ctx)
	return errors.Is(cause, context.Canceled) && !errors.Is(cause, apierr.ErrUnavailable)
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
	if err := h.admit(ctx, x, admission{via: viaPut, name: name, size: size, quota: size}); err != nil {
		return err
	}
	b, err := h.spool.Spool(ctx, r.Body, size)
	if err != nil {
		return x.body.cause(err)
	}
	defer b.Close()
	x.spool = b.Location().Kind()
	return h.publishOne(ctx, w, x, viaPut, name, b)
}

// publishOne stores one spooled body under name, of a type the allow list
// accepts, tells the hook and answers 201.
func (h *Handler) publishOne(ctx context.Context, w http.ResponseWriter, x *exchange, via, name string, b *spool.Body) error {
	ct, err := h.checkType(b.Reader())
	if err != nil {
		return err
	}
	if err := h.store.Put(ctx, []store.File{{Name: name, Body: b, ContentType: ct}}); err != nil {
		return err
	}
	resp := wire.UploadResponse{Files: []wire.FileResult{result(x.shown(name), b)}}
	x.files, x.stored = 1, b.Size()
	h.postFinish(ctx, x, via, name, resp.Files[0], ct)
	// Release the spool before answering: a client that sees the 201 sees
	// a clean spool directory too.
	if err := b.Close(); err != nil {
		h.log.Warn("spool cleanup failed", "error", err)
	}
	w.Header().Set("Location", fileURL(x.shown(name)))
	writeJSON(w, http.StatusCreated, resp)
	return nil
}

// checkSpace refuses a body of n bytes, before any byte of it is read,
// when the spool dir or the store has no room for it. An unknown or empty
// length is not checked.
func (h *Handler) checkSpace(ctx context.Context, n int64) error {
	if n <= 0 {
		return nil
	}
	if err := h.spool.CheckSpace(n); err != nil {
		return err
	}
	if sc := h.caps.SpaceChecker; sc != nil {
		return sc.CheckSpace(ctx, n)
	}
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
	// The parts' sizes are unknown, but together they are under the
	// body's: if the body does not fit, neither will its files.
	if err := h.checkSpace(ctx, r.ContentLength); err != nil {
		return err
	}
	if err := h.checkQuota(ctx, x, r.ContentLength); err != nil {
		return err
	}

	// A batch keeps the descriptors of a request with many files bounded
	// while its client sends them: each file that goes to disk is closed
	// once written, and opened again just before the files are published.
	batch := h.spool.NewBatch()
	defer batch.Close()
	var files []store.File
	var bodies []*spool.Body // files[i].Body, as spooled
	names := make(map[string]bool)
	// formdata rather than mime/multipart: it scans large buffers for the
	// delimiter, several times faster for big file parts, keeps
	// mime/multipart's header limits, and reports a body cut before its
	// closing delimiter as an error, not as a clean end.
	// Its window is a working buffer of the spool's, counted against the
	// memory budget like the spool's own.
	buf, release := h.spool.Buffer()
	defer release()
	mr := formdata.NewReaderBuffer(r.Body, boundary, formdata.Limits{MaxParts: h.maxParts}, buf)
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
		name = x.name(name)
		// Two files under one name would leave one of them lost, or
		// overwritten by the other, however the store orders them: the
		// request is refused whole, whether the server overwrites or not.
		if names[name] {
			return fmt.Errorf("%w: two file parts are named %q", errBadMultipart, name)
		}
		names[name] = true
		if err := h.admit(ctx, x, admission{via: viaForm, name: name, size: -1, quotaAsked: true}); err != nil {
			return err
		}
		b, err := batch.Spool(ctx, part, -1)
		if err != nil {
			return x.body.cause(multipartCause(err))
		}
		files = append(files, store.File{Name: name, Body: b})
		bodies = append(bodies, b)
		x.spool = joinSpool(x.spool, b.Location().Kind())
	}
	if len(files) == 0 {
		return errNoFiles
	}
	if err := batch.Open(); err != nil {
		return err
	}
	// Every file's type before any is published: one refused, none is.
	for i := range files {
		var err error
		if files[i].ContentType, err = h.checkType(bodies[i].Reader()); err != nil {
			return err
		}
	}
	if err := h.store.Put(ctx, files); err != nil {
		return err
	}
	resp := wire.UploadResponse{Files: make([]wire.FileResult, 0, len(files))}
	for i, f := range files {
		resp.Files = append(resp.Files, result(x.shown(f.Name), bodies[i]))
		x.files++
		x.stored += f.Body.Size()
	}
	for i, f := range files {
		h.postFinish(ctx, x, viaForm, f.Name, resp.Files[i], f.ContentType)
	}
	if err := batch.Close(); err != nil {
		h.log.Warn("spool cleanup failed", "error", err)
	}
	if len(files) == 1 {
		w.Header().Set("Location", fileURL(x.shown(files[0].Name)))
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

func joinSpool(acc, loc wire.Spool) wire.Spool {
	if acc == wire.SpoolNone || acc == loc {
		return loc
	}
	return wire.SpoolMixed
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
		if remote := h.caps.Presigner != nil; info.SHA256 == "" && !remote && wantsSHA256(r) {
			if info, err = h.hashStored(ctx, name); err != nil {
				return err
			}
		}
		dh, err := h.headersFor(ctx, name, info, nil)
		if err != nil {
			return err
		}
		setDownloadHeaders(w, dh, info)
		serveContent(w, r, name, info, io.NewSectionReader(noContent{}, 0, info.Size))
		return nil
	}
	if p := h.caps.Presigner; p != nil {
		dh := downloadHeaders(name)
		if !h.allow.Any() {
			info, err := h.store.Stat(ctx, name)
			if err != nil {
				return err
			}
			if dh, err = h.headersFor(ctx, name, info, nil); err != nil {
				return err
			}
		}
		u, err := p.PresignGet(ctx, name, dh)
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
	dh, err := h.headersFor(ctx, name, info, rc)
	if err != nil {
		return err
	}
	setDownloadHeaders(w, dh, info)
	serveContent(w, r, name, info, rc)
	return nil
}

func result(name string, b *spool.Body) wire.FileResult {
	sum := b.SHA256()
	return wire.FileResult{Name: name, Size: b.Size(), SHA256: hex.EncodeToString(sum[:]),
		CRC64NVME: store.EncodeCRC64NVME(b.CRC64NVME()), Spool: b.Location().Kind()}
}

// fileURL is the escaped path of a stored file.
func fileURL(name string) string {
	var b strings.Builder
	b.Grow(len("/files/") + len(name))
	b.WriteString("/files")
	for seg := range strings.SplitSeq(name, "/") {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(seg))
	}
	return b.String()
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
	case errors.Is(b.err, os.ErrDeadlineExceeded), errors.Is(b.err, apierr.ErrBadRequest):
		return b.err
	case errors.As(b.err, &netErr):
		// The connection failed under the body: the client is gone.
		return fmt.Errorf("%w: %w", spool.ErrIncomplete, b.err)
	}
	// What is left is the framing itself: a malformed chunk, an oversized
	// trailer. net/http's errors for those are not exported.
	return fmt.Errorf("%w: malformed body: %w", apierr.ErrBadRequest, b.err)
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
