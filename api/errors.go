package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"slices"

	"spillway/internal/formdata"
	"spillway/spool"
	"spillway/store"
)

// Error is an API error: an HTTP status, a stable machine-readable code, and
// a message for people. It is what clients see as
// {"error":{"code":"…","message":"…"}}.
type Error struct {
	Status    int    `json:"-"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// The handler's own errors, beside the spooler's and the stores'.
var (
	errBadMultipart  = errors.New("malformed multipart body")
	errNoFiles       = errors.New("no file parts in the request")
	errUnsupportedMT = errors.New("Content-Type must be multipart/form-data")
	errMethod        = errors.New("method not allowed")
	errRouteNotFound = errors.New("no such route")
	errBusy          = errors.New("too many uploads in progress; retry later")
	errBadSignature  = errors.New("the part URL is not valid")
	errNoMultipart   = errors.New("this server's store does not take uploads in parts")
)

// Errors that entrypoints wrap to choose a response.
var (
	ErrUnauthorized = errors.New("a valid bearer token is required") // 401 unauthorized
	ErrBadRequest   = errors.New("bad request")                      // 400 bad_request
	ErrUnavailable  = errors.New("the server is shutting down")      // 503 unavailable
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

// mapping is the one table from errors to responses. The first match wins.
var mapping = []struct {
	target error
	status int
	code   string
}{
	{spool.ErrTooLarge, http.StatusRequestEntityTooLarge, "too_large"},
	{ErrUnauthorized, http.StatusUnauthorized, "unauthorized"},
	{errBadSignature, http.StatusForbidden, "bad_signature"},
	{errBusy, http.StatusServiceUnavailable, "busy"},
	{store.ErrInvalidName, http.StatusBadRequest, "invalid_name"},
	{errBadMultipart, http.StatusBadRequest, "bad_multipart"},
	{formdata.ErrMalformed, http.StatusBadRequest, "bad_multipart"},
	{formdata.ErrHeaderTooLarge, http.StatusBadRequest, "bad_multipart"},
	{errNoFiles, http.StatusBadRequest, "no_files"},
	{spool.ErrIncomplete, http.StatusBadRequest, "incomplete_body"},
	{spool.ErrTooLong, http.StatusBadRequest, "bad_request"},
	{ErrBadRequest, http.StatusBadRequest, "bad_request"},
	{store.ErrChecksum, http.StatusBadRequest, "bad_checksum"},
	{store.ErrUploadMismatch, http.StatusBadRequest, "upload_mismatch"},
	{errUnsupportedMT, http.StatusUnsupportedMediaType, "unsupported_media_type"},
	{store.ErrExists, http.StatusConflict, "exists"},
	{store.ErrInsufficientStorage, http.StatusInsufficientStorage, "insufficient_storage"},
	{spool.ErrNoSpace, http.StatusInsufficientStorage, "insufficient_storage"},
	{store.ErrUploadNotFound, http.StatusNotFound, "upload_not_found"},
	{store.ErrNotFound, http.StatusNotFound, "not_found"},
	{errRouteNotFound, http.StatusNotFound, "not_found"},
	{errMethod, http.StatusMethodNotAllowed, "method_not_allowed"},
	{errNoMultipart, http.StatusNotImplemented, "multipart_unsupported"},
	{os.ErrDeadlineExceeded, http.StatusRequestTimeout, "timeout"},
	{store.ErrBackend, http.StatusBadGateway, "storage_error"},
	{store.ErrThrottled, http.StatusServiceUnavailable, "throttled"},
	{ErrUnavailable, http.StatusServiceUnavailable, "unavailable"},
	{context.Canceled, http.StatusServiceUnavailable, "unavailable"},
	{context.DeadlineExceeded, http.StatusServiceUnavailable, "unavailable"},
	{ErrBadEvent, http.StatusInternalServerError, "bad_event"},
	{ErrResponseTooLarge, http.StatusBadGateway, "response_too_large"},
}

// fixedMessage lists the errors answered with their own text alone: what
// is wrapped around them is for the log, not the client.
var fixedMessage = []error{ErrBadEvent, ErrResponseTooLarge}

// ErrorFor maps any error to the response it deserves. Unknown errors are
// 500 internal, with their detail kept out of the response.
func ErrorFor(err error) *Error {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr
	}
	for _, m := range mapping {
		if errors.Is(err, m.target) {
			msg := err.Error()
			if slices.Contains(fixedMessage, m.target) {
				msg = m.target.Error()
			}
			return &Error{Status: m.status, Code: m.code, Message: msg}
		}
	}
	return &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
}

// WriteError answers err as the API does, for entrypoints that must refuse a
// request before it reaches the handler.
func WriteError(w http.ResponseWriter, err error) { writeError(w, ErrorFor(err)) }

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
		status, body = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
