package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"slices"
	"syscall"

	"spillway/apierr"
	"spillway/internal/formdata"
	"spillway/spool"
	"spillway/store"
	"spillway/wire"
)

// The handler's own errors, beside the spooler's and the stores'. Their
// text is for the log; clients get their code's message.
var (
	errBadMultipart  = apierr.New(wire.CodeBadMultipart, "malformed multipart body")
	errNoFiles       = apierr.New(wire.CodeNoFiles, "no file parts in the request")
	errUnsupportedMT = apierr.New(wire.CodeUnsupportedMediaType, "Content-Type must be multipart/form-data")
	errMethod        = apierr.New(wire.CodeMethodNotAllowed, "method not allowed")
	errRouteNotFound = apierr.New(wire.CodeNotFound, "no such route")
	errBusy          = apierr.New(wire.CodeBusy, "too many uploads or listings in progress")
	errBadSignature  = apierr.New(wire.CodeBadSignature, "the part URL is not valid")
	errNoMultipart   = apierr.New(wire.CodeMultipartUnsupported, "this server's store does not take uploads in parts")
	// errClientGone marks a request whose client went away while it was
	// handled: the request's context was cancelled, and not by a shutdown.
	errClientGone = apierr.New(wire.CodeClientGone, "the client went away")
	// errBadQuery is a query parameter out of its range or form.
	errBadQuery = apierr.New(wire.CodeBadQuery, "bad query parameter")
)

// A rule answers the errors that wrap target with code.
type rule struct {
	target error
	code   wire.Code
}

// own is the rule of an error value of the catalogue: its own code.
func own(err error) rule {
	code, _ := apierr.CodeOf(err)
	return rule{err, code}
}

// mapping is the one table from errors to codes. The first match wins.
// An error may wrap several of these (a client gone under a parser's
// error, say): the order says which one the client is told.
var mapping = []rule{
	{spool.ErrTooLarge, wire.CodeTooLarge},
	{store.ErrUploadTooLarge, wire.CodeTooLarge},
	own(apierr.ErrUnauthorized),
	own(errInvalidSpace),
	own(errQuota),
	own(errBadSignature),
	// Before context's errors: a hook that timed out is the hook's.
	own(errHookRefused),
	own(errHookUnavailable),
	own(errTypeNotAllowed),
	own(errBusy),
	// Out of descriptors (spool, store or socket): the server is at
	// capacity for the moment, which is what busy tells the client.
	{syscall.EMFILE, wire.CodeBusy},
	{syscall.ENFILE, wire.CodeBusy},
	{store.ErrInvalidName, wire.CodeInvalidName},
	own(errBadMultipart),
	{formdata.ErrMalformed, wire.CodeBadMultipart},
	{formdata.ErrHeaderTooLarge, wire.CodeBadMultipart},
	own(errNoFiles),
	{spool.ErrIncomplete, wire.CodeIncompleteBody},
	{spool.ErrTooLong, wire.CodeBadRequest},
	own(errBadQuery),
	own(apierr.ErrBadRequest),
	{store.ErrInvalidUpload, wire.CodeBadRequest},
	{store.ErrBadCRC64NVME, wire.CodeBadRequest},
	{store.ErrChecksum, wire.CodeBadChecksum},
	own(errTusVersion),
	own(errTusNotFound),
	own(errTusMediaType),
	own(errChecksumAlgorithm),
	{store.ErrOffsetMismatch, wire.CodeOffsetMismatch},
	{store.ErrLocked, wire.CodeLocked},
	{store.ErrChunkChecksum, wire.CodeChecksumMismatch},
	{store.ErrUploadMismatch, wire.CodeUploadMismatch},
	own(errUnsupportedMT),
	{store.ErrExists, wire.CodeExists},
	{store.ErrInsufficientStorage, wire.CodeInsufficientStorage},
	{store.ErrTooManyUploads, wire.CodeTooManyUploads},
	{spool.ErrNoSpace, wire.CodeInsufficientStorage},
	{store.ErrUploadNotFound, wire.CodeUploadNotFound},
	{store.ErrNotFound, wire.CodeNotFound},
	own(errRouteNotFound),
	own(errMethod),
	own(errNoMultipart),
	{os.ErrDeadlineExceeded, wire.CodeTimeout},
	{store.ErrBackend, wire.CodeStorageError},
	{store.ErrThrottled, wire.CodeThrottled},
	own(apierr.ErrBadEvent),
	own(apierr.ErrResponseTooLarge),
	own(errClientGone),
	own(apierr.ErrUnavailable),
	{context.Canceled, wire.CodeUnavailable},
	{context.DeadlineExceeded, wire.CodeUnavailable},
}

// ErrorFor maps any error to the response it deserves: its code's status
// and fixed message. Unknown errors are 500 internal.
func ErrorFor(err error) *apierr.Error {
	if e, ok := errors.AsType[*apierr.Error](err); ok {
		return e
	}
	i := slices.IndexFunc(mapping, func(m rule) bool { return errors.Is(err, m.target) })
	if i < 0 {
		return apierr.From(err)
	}
	e := apierr.Of(mapping[i].code)
	if tooLarge, ok := errors.AsType[*spool.TooLargeError](err); ok && e.Code == wire.CodeTooLarge {
		e.Limit = tooLarge.Limit
	}
	return e
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Unreachable: v is one of the wire types.
		apierr.Of(wire.CodeInternal).Write(w)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
