// Package apierr is the upload API's catalogue of errors: every code with
// its HTTP status and its one fixed message, the error values that choose
// a code when wrapped, and the writer of the error JSON. The API's handler
// answers with it, and so do the entrypoints that refuse a request before
// the handler sees it: the Lambda adapter and the Function URL emulator.
// It imports no part of the server (no handler, store or page), so that
// they link only this.
//
// A message is a fixed string that says what happened and what the client
// can do: it names no file, path, host or figure, so that nothing internal
// reaches a client. The detail goes to the log, under the request ID the
// response carries.
package apierr

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"spillway/wire"
)

// StatusClientClosedRequest is the status logged for a client that went
// away before its answer (nginx's 499); no client reads it.
const StatusClientClosedRequest = 499

// StatusChecksumMismatch is tus's status for a chunk that does not match
// its Upload-Checksum.
const StatusChecksumMismatch = 460

// catalogue holds each code's status and its one message.
var catalogue = map[wire.Code]struct {
	status  int
	message string
}{
	wire.CodeUnauthorized:         {http.StatusUnauthorized, "a valid bearer token is required; send it as Authorization: Bearer <token>"},
	wire.CodeInvalidSpace:         {http.StatusForbidden, "the token is valid, but its user space claim cannot be a folder name; ask the administrator to use another claim"},
	wire.CodeBadSignature:         {http.StatusForbidden, "the part URL is invalid or has expired; get fresh part URLs from GET /uploads/{id}/parts"},
	wire.CodeInvalidName:          {http.StatusBadRequest, "the file name is not allowed; use a relative path of visible characters in Unicode NFC, without \"..\", hidden segments, Windows device names or any of \\ : * ? \" < > |"},
	wire.CodeBadMultipart:         {http.StatusBadRequest, "the multipart/form-data body is malformed, has too many parts, gives two files one name, or has a filename* in a charset other than UTF-8 or ISO-8859-1; send a well-formed body with each file under its own name"},
	wire.CodeNoFiles:              {http.StatusBadRequest, "the multipart/form-data body has no file part; send each file as a part with a filename"},
	wire.CodeIncompleteBody:       {http.StatusBadRequest, "the body ended before its declared length; send the whole file again"},
	wire.CodeBadQuery:             {http.StatusBadRequest, "a query parameter is invalid: limit must be an integer from 1 to 1000, cursor a next_cursor from an earlier page, and prefix the start of a name"},
	wire.CodeBadRequest:           {http.StatusBadRequest, "the request is malformed; check its body, its length and its parameters"},
	wire.CodeBadChecksum:          {http.StatusBadRequest, "the bytes received do not match their checksums; send the file again"},
	wire.CodeUploadMismatch:       {http.StatusBadRequest, "the parts do not match the upload; list the parts received with GET /uploads/{id} and send the missing or wrong ones again"},
	wire.CodeUnsupportedMediaType: {http.StatusUnsupportedMediaType, "POST /files takes multipart/form-data; send a single file with PUT /files/{name}"},
	wire.CodeExists:               {http.StatusConflict, "a file with this name already exists; choose another name or overwrite where the server allows it"},
	wire.CodeTooLarge:             {http.StatusRequestEntityTooLarge, "the file or request body is larger than this server accepts; send a smaller one"},
	wire.CodeQuotaExceeded:        {http.StatusRequestEntityTooLarge, "this upload would take your stored files over your quota; delete some files or send a smaller one"},
	wire.CodeTusVersion:           {http.StatusPreconditionFailed, "this server speaks tus 1.0.0 only; send Tus-Resumable: 1.0.0"},
	wire.CodeTusUploadNotFound:    {http.StatusNotFound, "no tus upload has this URL; it was terminated or has expired: create a new one with POST /tus/"},
	wire.CodeTusMediaType:         {http.StatusUnsupportedMediaType, "a tus PATCH carries Content-Type: application/offset+octet-stream"},
	wire.CodeOffsetMismatch:       {http.StatusConflict, "Upload-Offset is not the upload's offset; ask for it with HEAD and resume from there"},
	wire.CodeLocked:               {http.StatusLocked, "another request is writing to this upload; retry once it has ended"},
	wire.CodeChecksumAlgorithm:    {http.StatusBadRequest, "Upload-Checksum must be an algorithm of Tus-Checksum-Algorithm (sha1, sha256, crc32) and its digest in base64"},
	wire.CodeChecksumMismatch:     {StatusChecksumMismatch, "the chunk does not match its Upload-Checksum and was not stored; send it again"},
	wire.CodeInsufficientStorage:  {http.StatusInsufficientStorage, "the server has no room for this file now; try again later or send a smaller file"},
	wire.CodeTooManyUploads:       {http.StatusTooManyRequests, "too many uploads are open; complete or abort one first"},
	wire.CodeUploadNotFound:       {http.StatusNotFound, "no upload has this ID; it was completed, aborted or expired: start a new one with POST /uploads"},
	wire.CodeNotFound:             {http.StatusNotFound, "no file or route has this path; GET /files lists the stored files"},
	wire.CodeMethodNotAllowed:     {http.StatusMethodNotAllowed, "this method is not allowed here; the Allow header lists the ones that are"},
	wire.CodeMultipartUnsupported: {http.StatusNotImplemented, "this server does not take uploads in parts; send the file with PUT /files/{name}"},
	wire.CodeTimeout:              {http.StatusRequestTimeout, "the body stopped arriving for too long; send the file again"},
	wire.CodeStorageError:         {http.StatusBadGateway, "the storage service failed; try again later"},
	wire.CodeThrottled:            {http.StatusServiceUnavailable, "the storage service asks to slow down; retry after the Retry-After delay"},
	wire.CodeBusy:                 {http.StatusServiceUnavailable, "too many uploads or listings are in progress; retry after the Retry-After delay"},
	wire.CodeUnavailable:          {http.StatusServiceUnavailable, "the server is shutting down or ran out of time for this request; retry after the Retry-After delay"},
	wire.CodeClientGone:           {StatusClientClosedRequest, "the client closed the connection before the answer"},
	wire.CodeInternal:             {http.StatusInternalServerError, "internal error; quote the request_id when you report it"},
	wire.CodeBadEvent:             {http.StatusInternalServerError, "the function received an event that is not an HTTP request; its trigger is misconfigured, so quote the request_id when you report it"},
	wire.CodeHookRefused:          {http.StatusForbidden, "the server's upload hook refused this upload"},
	wire.CodeHookUnavailable:      {http.StatusServiceUnavailable, "the server's upload hook did not answer, so nothing was stored; retry after the Retry-After delay"},
	wire.CodeTypeNotAllowed:       {http.StatusUnsupportedMediaType, "this server does not accept files of this type, judged by their first bytes; nothing was stored"},
	wire.CodeResponseTooLarge:     {http.StatusBadGateway, "the response is too large for this transport; ask for less, such as a smaller page of GET /files"},
}

// Codes returns every code of the catalogue, sorted.
func Codes() []wire.Code {
	return slices.Sorted(func(yield func(wire.Code) bool) {
		for c := range catalogue {
			if !yield(c) {
				return
			}
		}
	})
}

// Error is an error response: an HTTP status, a code, and the code's
// fixed message. As an error it is answered as it is, so an entrypoint can
// build one for a response it chose itself.
type Error struct {
	Status  int
	Code    wire.Code
	Message string
	// Limit is the figure of a too_large (see wire.Error.Limit); 0: none.
	Limit     int64
	RequestID string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Of returns the response for code: its status and fixed message. A code
// outside the catalogue is internal.
func Of(code wire.Code) *Error {
	c, ok := catalogue[code]
	if !ok {
		code = wire.CodeInternal
		c = catalogue[code]
	}
	return &Error{Status: c.status, Code: code, Message: c.message}
}

// Response is the JSON body of e.
func (e *Error) Response() wire.ErrorResponse {
	return wire.ErrorResponse{Error: wire.Error{Code: e.Code, Message: e.Message, Limit: e.Limit, RequestID: e.RequestID}}
}

// Write answers e: its status, its JSON, and Retry-After on a 503.
func (e *Error) Write(w http.ResponseWriter) {
	// Nothing in the body can fail to marshal.
	body, _ := json.Marshal(e.Response())
	h := w.Header()
	if e.Status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(e.Status)
	w.Write(append(body, '\n'))
}

// coded is an error value of the catalogue: an error that wraps it is
// answered with its code. Its text is for the log only.
type coded struct {
	code wire.Code
	text string
}

func (c *coded) Error() string { return c.text }

// New returns an error value that, wrapped or not, is answered with code.
// text says what went wrong in the log; the client gets the code's message.
func New(code wire.Code, text string) error { return &coded{code, text} }

// CodeOf returns the code of the first error value of New that err wraps.
func CodeOf(err error) (wire.Code, bool) {
	if c, ok := errors.AsType[*coded](err); ok {
		return c.code, true
	}
	return "", false
}

// The error values that entrypoints wrap to choose a response.
var (
	ErrUnauthorized = New(wire.CodeUnauthorized, "a valid bearer token is required")
	ErrBadRequest   = New(wire.CodeBadRequest, "bad request")
	// ErrUnavailable is 503 unavailable. An entrypoint that cancels its
	// requests' contexts when it shuts down cancels them with this cause
	// (context.WithCancelCause), so that the handler tells a shutdown from
	// a client that went away.
	ErrUnavailable = New(wire.CodeUnavailable, "the server is shutting down")
	// ErrBadEvent is an invocation that describes no HTTP request: the
	// function is wired to a trigger it does not speak, which is the
	// deployment's fault, not the client's.
	ErrBadEvent = New(wire.CodeBadEvent, "the function received an event it cannot read")
	// ErrResponseTooLarge is a response the transport cannot carry, such
	// as one over a Lambda invocation's response cap. A ResponseWriter
	// that buffers the response returns it from Write, and then answers
	// this error instead of the response.
	ErrResponseTooLarge = New(wire.CodeResponseTooLarge, "the response is too large to send")
)

// From returns the response err deserves: err itself when it is an
// *Error, the code of the error value of New it wraps, or else internal.
// The API's handler knows more errors (its stores' and its spooler's) and
// maps them first.
func From(err error) *Error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	if code, ok := CodeOf(err); ok {
		return Of(code)
	}
	return Of(wire.CodeInternal)
}

// WriteError answers err, for an entrypoint that must refuse a request
// before it reaches the handler: the code's fixed message, and the request
// ID in ctx, when there is one, as X-Request-Id and request_id. The caller
// logs err under that ID; the API's Handler.Refuse does both.
func WriteError(ctx context.Context, w http.ResponseWriter, err error) {
	e := *From(err)
	if id := RequestID(ctx); id != "" {
		e.RequestID = id
		w.Header().Set("X-Request-Id", id)
	}
	e.Write(w)
}

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
