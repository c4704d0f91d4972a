package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"syscall"

	"spillway/internal/formdata"
	"spillway/spool"
	"spillway/store"
)

// Error is an API error: an HTTP status, a stable machine-readable code, and
// the one fixed message for people that goes with the code. It is what
// clients see as {"error":{"code":"…","message":"…","request_id":"…"}}.
// What went wrong in detail is logged under the request ID, never sent.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Limit is the largest size in bytes the server accepts, on too_large
	// when a limit is configured: the one figure a client needs to act on
	// the refusal, kept out of the fixed message.
	Limit     int64  `json:"limit,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// The handler's own errors, beside the spooler's and the stores'. Their
// text is for the log; clients get their code's message.
var (
	errBadMultipart  = errors.New("malformed multipart body")
	errNoFiles       = errors.New("no file parts in the request")
	errUnsupportedMT = errors.New("Content-Type must be multipart/form-data")
	errMethod        = errors.New("method not allowed")
	errRouteNotFound = errors.New("no such route")
	errBusy          = errors.New("too many uploads or listings in progress")
	errBadSignature  = errors.New("the part URL is not valid")
	errNoMultipart   = errors.New("this server's store does not take uploads in parts")
	// errClientGone marks a request whose client went away while it was
	// handled: the request's context was cancelled, and not by a shutdown.
	errClientGone = errors.New("the client went away")
	// errBadQuery is a query parameter out of its range or form.
	errBadQuery = errors.New("bad query parameter")
)

// Errors that entrypoints wrap to choose a response.
var (
	ErrUnauthorized = errors.New("a valid bearer token is required") // 401 unauthorized
	ErrBadRequest   = errors.New("bad request")                      // 400 bad_request
	// ErrUnavailable is 503 unavailable. An entrypoint that cancels its
	// requests' contexts when it shuts down cancels them with this cause
	// (context.WithCancelCause), so that the handler tells a shutdown from
	// a client that went away.
	ErrUnavailable = errors.New("the server is shutting down")
	// ErrBadEvent is an invocation that describes no HTTP request: the
	// function is wired to a trigger it does not speak, which is the
	// deployment's fault, not the client's.
	ErrBadEvent = errors.New("the function received an event it cannot read") // 500 bad_event
	// ErrResponseTooLarge is a response the transport cannot carry, such
	// as one over a Lambda invocation's response cap. A ResponseWriter
	// that buffers the response returns it from Write, and then answers
	// this error instead of the response.
	ErrResponseTooLarge = errors.New("the response is too large to send") // 502 response_too_large
)

// StatusClientClosedRequest is the status logged for a client that went
// away before its answer (nginx's 499); no client reads it.
const StatusClientClosedRequest = 499

// codes holds each code's status and its one message. A message is a fixed
// string that says what happened and what the client can do: it names no
// file, path, host or figure, so that nothing internal reaches a client.
var codes = map[string]struct {
	status  int
	message string
}{
	"unauthorized":           {http.StatusUnauthorized, "a valid bearer token is required; send it as Authorization: Bearer <token>"},
	"bad_signature":          {http.StatusForbidden, "the part URL is invalid or has expired; get fresh part URLs from GET /uploads/{id}/parts"},
	"invalid_name":           {http.StatusBadRequest, "the file name is not allowed; use a relative path of visible characters in Unicode NFC, without \"..\", hidden segments, Windows device names or any of \\ : * ? \" < > |"},
	"bad_multipart":          {http.StatusBadRequest, "the multipart/form-data body is malformed, has too many parts, gives two files one name, or has a filename* in a charset other than UTF-8 or ISO-8859-1; send a well-formed body with each file under its own name"},
	"no_files":               {http.StatusBadRequest, "the multipart/form-data body has no file part; send each file as a part with a filename"},
	"incomplete_body":        {http.StatusBadRequest, "the body ended before its declared length; send the whole file again"},
	"bad_query":              {http.StatusBadRequest, "a query parameter is invalid: limit must be an integer from 1 to 1000, cursor a next_cursor from an earlier page, and prefix the start of a name"},
	"bad_request":            {http.StatusBadRequest, "the request is malformed; check its body, its length and its parameters"},
	"bad_checksum":           {http.StatusBadRequest, "the bytes received do not match their checksums; send the file again"},
	"upload_mismatch":        {http.StatusBadRequest, "the parts do not match the upload; list the parts received with GET /uploads/{id} and send the missing or wrong ones again"},
	"unsupported_media_type": {http.StatusUnsupportedMediaType, "POST /files takes multipart/form-data; send a single file with PUT /files/{name}"},
	"exists":                 {http.StatusConflict, "a file with this name already exists; choose another name or overwrite where the server allows it"},
	"too_large":              {http.StatusRequestEntityTooLarge, "the file or request body is larger than this server accepts; send a smaller one"},
	"insufficient_storage":   {http.StatusInsufficientStorage, "the server has no room for this file now; try again later or send a smaller file"},
	"upload_not_found":       {http.StatusNotFound, "no upload has this ID; it was completed, aborted or expired: start a new one with POST /uploads"},
	"not_found":              {http.StatusNotFound, "no file or route has this path; GET /files lists the stored files"},
	"method_not_allowed":     {http.StatusMethodNotAllowed, "this method is not allowed here; the Allow header lists the ones that are"},
	"multipart_unsupported":  {http.StatusNotImplemented, "this server does not take uploads in parts; send the file with PUT /files/{name}"},
	"timeout":                {http.StatusRequestTimeout, "the body stopped arriving for too long; send the file again"},
	"storage_error":          {http.StatusBadGateway, "the storage service failed; try again later"},
	"throttled":              {http.StatusServiceUnavailable, "the storage service asks to slow down; retry after the Retry-After delay"},
	"busy":                   {http.StatusServiceUnavailable, "too many uploads or listings are in progress; retry after the Retry-After delay"},
	"unavailable":            {http.StatusServiceUnavailable, "the server is shutting down or ran out of time for this request; retry after the Retry-After delay"},
	"client_gone":            {StatusClientClosedRequest, "the client closed the connection before the answer"},
	"internal":               {http.StatusInternalServerError, "internal error; quote the request_id when you report it"},
	"bad_event":              {http.StatusInternalServerError, "the function received an event that is not an HTTP request; its trigger is misconfigured, so quote the request_id when you report it"},
	"response_too_large":     {http.StatusBadGateway, "the response is too large for this transport; ask for less, such as a smaller page of GET /files"},
}

// mapping is the one table from errors to codes. The first match wins.
var mapping = []struct {
	target error
	code   string
}{
	{spool.ErrTooLarge, "too_large"},
	{ErrUnauthorized, "unauthorized"},
	{errBadSignature, "bad_signature"},
	{errBusy, "busy"},
	// Out of descriptors (spool, store or socket): the server is at
	// capacity for the moment, which is what busy tells the client.
	{syscall.EMFILE, "busy"},
	{syscall.ENFILE, "busy"},
	{store.ErrInvalidName, "invalid_name"},
	{errBadMultipart, "bad_multipart"},
	{formdata.ErrMalformed, "bad_multipart"},
	{formdata.ErrHeaderTooLarge, "bad_multipart"},
	{errNoFiles, "no_files"},
	{spool.ErrIncomplete, "incomplete_body"},
	{spool.ErrTooLong, "bad_request"},
	{errBadQuery, "bad_query"},
	{ErrBadRequest, "bad_request"},
	{store.ErrChecksum, "bad_checksum"},
	{store.ErrUploadMismatch, "upload_mismatch"},
	{errUnsupportedMT, "unsupported_media_type"},
	{store.ErrExists, "exists"},
	{store.ErrInsufficientStorage, "insufficient_storage"},
	{spool.ErrNoSpace, "insufficient_storage"},
	{store.ErrUploadNotFound, "upload_not_found"},
	{store.ErrNotFound, "not_found"},
	{errRouteNotFound, "not_found"},
	{errMethod, "method_not_allowed"},
	{errNoMultipart, "multipart_unsupported"},
	{os.ErrDeadlineExceeded, "timeout"},
	{store.ErrBackend, "storage_error"},
	{store.ErrThrottled, "throttled"},
	{ErrBadEvent, "bad_event"},
	{ErrResponseTooLarge, "response_too_large"},
	{errClientGone, "client_gone"},
	{ErrUnavailable, "unavailable"},
	{context.Canceled, "unavailable"},
	{context.DeadlineExceeded, "unavailable"},
}

// ErrorFor maps any error to the response it deserves: its code's status
// and fixed message. Unknown errors are 500 internal.
func ErrorFor(err error) *Error {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr
	}
	code := "internal"
	for _, m := range mapping {
		if errors.Is(err, m.target) {
			code = m.code
			break
		}
	}
	c := codes[code]
	e := &Error{Status: c.status, Code: code, Message: c.message}
	if tooLarge, ok := errors.AsType[*spool.TooLargeError](err); ok && code == "too_large" {
		e.Limit = tooLarge.Limit
	}
	return e
}

// WriteError answers err as the handler does, for an entrypoint that must
// refuse a request before it reaches the handler: the code's fixed message,
// and the request ID in ctx, when there is one, as X-Request-Id and
// request_id. The caller logs err under that ID; Handler.Refuse does both.
func WriteError(ctx context.Context, w http.ResponseWriter, err error) {
	e := *ErrorFor(err)
	if id := RequestID(ctx); id != "" {
		e.RequestID = id
		w.Header().Set("X-Request-Id", id)
	}
	writeError(w, &e)
}

func writeError(w http.ResponseWriter, e *Error) {
	if e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.Status, struct {
		Error *Error `json:"error"`
	}{e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"internal error; quote the request_id when you report it"}}`) // unreachable: v is the handler's own types
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
