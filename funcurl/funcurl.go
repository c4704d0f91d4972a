// Package funcurl emulates an AWS Lambda Function URL on a developer's
// machine, without Docker. Its Handler turns each HTTP request into the
// event a deployed Function URL sends (payload format 2.0), invokes the
// function, and turns the function's response back into HTTP: it is the
// inverse of lambdahttp. The function runs for real, as its bootstrap
// binary under the AWS Lambda Runtime Interface Emulator (RIE).
//
// It applies a Function URL's limits, which the emulator alone does not:
// an event over MaxRequestSize is refused with 413 before the function is
// invoked (the emulator would truncate it), and a response payload over
// MaxResponseSize becomes a 502.
//
// AWS documents the 413's status but not its body, so the 413 carries
// Spillway's own error JSON (code too_large): what every Spillway client
// already reads, with a hint at the way around the limit.
package funcurl

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"spillway/apierr"
	"spillway/lambdahttp"
	"spillway/spool"
	"spillway/wire"
)

// Limits of a deployed Function URL (payload quotas of a synchronous
// invocation).
const (
	// MaxRequestSize caps the whole event JSON, body included.
	MaxRequestSize = 6_291_456
	// MaxResponseSize caps the function's response payload; Lambda allows
	// 100 bytes more than for requests.
	MaxResponseSize = 6_291_556
)

// An Invocation is one event on its way to the function.
type Invocation struct {
	RequestID string
	TraceID   string
	// Event yields the event JSON, exactly Size bytes.
	Event io.Reader
	Size  int64
}

// An Invoker runs the function on one event.
type Invoker interface {
	// Invoke returns the function's response payload. It need not read
	// more than MaxResponseSize+1 bytes of it: a longer payload is refused
	// either way. Any error means the function gave no response.
	Invoke(ctx context.Context, inv Invocation) ([]byte, error)
}

// Config configures a Handler.
type Config struct {
	// Spooler holds each request body while its event is built, in memory
	// or in a spool file, so that its size is known before the function is
	// invoked and the event streams from it.
	Spooler *spool.Spooler
	Invoker Invoker
	Logger  *slog.Logger // nil: slog.Default()
	// ReadTimeout aborts a body that sends nothing for this long. Zero
	// means no limit.
	ReadTimeout time.Duration
	// Concurrency is how many invocations run at once; more wait in line.
	// Zero means one, all that the Runtime Interface Emulator serves: it
	// refuses an invocation while another one runs.
	Concurrency int
}

// Handler is the Function URL.
type Handler struct {
	spooler     *spool.Spooler
	invoker     Invoker
	log         *slog.Logger
	readTimeout time.Duration
	slots       chan struct{}
	queued      func() // tests: called when a request starts waiting for a slot
}

// New returns a Handler for cfg.
func New(cfg Config) *Handler {
	h := &Handler{spooler: cfg.Spooler, invoker: cfg.Invoker, log: cfg.Logger, readTimeout: cfg.ReadTimeout}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.slots = make(chan struct{}, max(cfg.Concurrency, 1))
	return h
}

// The message a Function URL answers with when it, not the function,
// fails a request: 502 for a function that failed or answered badly (and
// 500 for the emulator's own failures).
const msgInternal = "Internal Server Error"

// msgTooLarge is the fixed message of the 413 for an event over
// MaxRequestSize.
const msgTooLarge = "the request is over the 6,291,456 bytes a Function URL event can carry; send large files in parts (POST /uploads)"

// errShuttingDown is logged for a request refused during shutdown.
var errShuttingDown = errors.New("the server is shutting down")

// exchange is what the log line says about one request.
type exchange struct {
	id       string // the request ID, for the error JSON
	status   int
	received int64
	spool    string
	event    int64
	wait     time.Duration // for the function to be free
	invoke   time.Duration
	err      error
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.handle(w, r, func(x *exchange, trace string, start time.Time) {
		h.serve(w, r, newEvent(r, x.id, trace, start), x)
	})
}

// Unavailable answers a request that arrives while the server shuts down
// with 503 and the API's error JSON (code unavailable), as the local
// server answers it, without invoking the function.
func (h *Handler) Unavailable(w http.ResponseWriter, r *http.Request) {
	h.handle(w, r, func(x *exchange, _ string, _ time.Time) {
		w.Header().Set("Retry-After", "1")
		e := apierr.Of(wire.CodeUnavailable)
		e.RequestID = x.id
		h.writeJSON(w, x, e.Status, e.Response(), errShuttingDown)
	})
}

// handle gives a request its IDs, runs answer, and logs the request.
func (h *Handler) handle(w http.ResponseWriter, r *http.Request, answer func(x *exchange, trace string, start time.Time)) {
	start := time.Now()
	id := newRequestID()
	trace := traceID(r.Header.Get("X-Amzn-Trace-Id"), start)
	w.Header().Set("X-Amzn-Requestid", id)
	w.Header().Set("X-Amzn-Trace-Id", trace)
	x := &exchange{id: id}
	answer(x, trace, start)

	level := slog.LevelInfo
	if x.status >= 500 {
		level = slog.LevelError
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("path", rawPath(r)),
		slog.Int("status", x.status),
		slog.Int64("bytes", x.received),
		slog.String("spool", x.spool),
		slog.Int64("event_bytes", x.event),
		slog.Duration("wait", x.wait),
		slog.Duration("invoke", x.invoke),
		slog.Duration("duration", time.Since(start)),
		slog.String("request_id", id),
	}
	if x.err != nil {
		attrs = append(attrs, slog.String("error", x.err.Error()))
	}
	h.log.LogAttrs(r.Context(), level, "request", attrs...)
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, ev *event, x *exchange) {
	text := lambdahttp.IsText(r.Header.Get("Content-Type"))
	// A declared length that cannot fit is refused before the first read,
	// so a client that waits for 100 Continue never sends its body. For a
	// base64 body the size is exact; escaping only makes text longer.
	if r.ContentLength > 0 {
		head, tail, _, err := frame(ev, !text)
		if err != nil {
			h.fail(w, x, http.StatusInternalServerError, msgInternal, err)
			return
		}
		least := r.ContentLength
		if !text {
			least = int64(base64.StdEncoding.EncodedLen(int(min(r.ContentLength, MaxRequestSize+1))))
		}
		if size := int64(len(head)) + least + int64(len(tail)); size > MaxRequestSize {
			h.tooLarge(w, x,
				fmt.Errorf("funcurl: a %d-byte body makes an event of at least %d bytes, over the %d-byte limit", r.ContentLength, size, MaxRequestSize))
			return
		}
	}

	var body *spool.Body
	if r.ContentLength != 0 {
		var err error
		body, err = h.spool(w, r, x)
		if err != nil {
			h.failSpool(w, x, err)
			return
		}
		defer body.Close()
		x.spool = body.Location().String()
		if body.Size() == 0 {
			body.Close()
			body = nil
		}
	}

	inv := Invocation{RequestID: ev.RequestContext.RequestID, TraceID: ev.Headers["x-amzn-trace-id"]}
	var writeBody func(io.Writer) error
	if body == nil {
		_, _, whole, err := frame(ev, false)
		if err != nil {
			h.fail(w, x, http.StatusInternalServerError, msgInternal, err)
			return
		}
		inv.Size = int64(len(whole))
		writeBody = func(w io.Writer) error {
			_, err := w.Write(whole)
			return err
		}
	} else {
		base64Body := true
		encoded := int64(base64.StdEncoding.EncodedLen(int(body.Size())))
		if text {
			n, valid, err := scanText(body.Reader())
			if err != nil {
				h.fail(w, x, http.StatusInternalServerError, msgInternal, err)
				return
			}
			if valid {
				base64Body, encoded = false, n
			}
		}
		head, tail, _, err := frame(ev, base64Body)
		if err != nil {
			h.fail(w, x, http.StatusInternalServerError, msgInternal, err)
			return
		}
		inv.Size = int64(len(head)) + encoded + int64(len(tail))
		if inv.Size > MaxRequestSize {
			x.event = inv.Size
			h.tooLarge(w, x,
				fmt.Errorf("funcurl: the event would be %d bytes, over the %d-byte limit", inv.Size, MaxRequestSize))
			return
		}
		writeBody = func(w io.Writer) error { return writeEvent(w, head, body.Reader(), base64Body, tail) }
	}
	x.event = inv.Size

	payload, err := h.invoke(r.Context(), inv, writeBody, x)
	if err != nil {
		h.fail(w, x, http.StatusBadGateway, msgInternal, err)
		return
	}
	// The spool file is no longer needed while the client reads.
	if body != nil {
		body.Close()
	}
	if err := h.respond(w, payload, x); err != nil {
		h.fail(w, x, http.StatusBadGateway, msgInternal, err)
	}
}

// spool reads the whole body, up to the largest one an event can carry.
func (h *Handler) spool(w http.ResponseWriter, r *http.Request, x *exchange) (*spool.Body, error) {
	br := &bodyReader{
		r:       http.MaxBytesReader(w, r.Body, MaxRequestSize),
		rc:      http.NewResponseController(w),
		timeout: h.readTimeout,
	}
	body, err := h.spooler.Spool(r.Context(), br, r.ContentLength)
	x.received = br.n
	if err == nil && h.readTimeout > 0 {
		// The invocation can take minutes; the deadline was for the body.
		// (After a failed read it stays: net/http drains what is left of a
		// small body before it answers, and must not wait for ever.)
		_ = br.rc.SetReadDeadline(time.Time{})
	}
	return body, err
}

// invoke waits for a free slot, then streams the event to the invoker.
// Once started, an invocation is not cancelled when its client goes away:
// the function runs to the end as on Lambda, and the emulator must be idle
// before the next one.
func (h *Handler) invoke(ctx context.Context, inv Invocation, writeBody func(io.Writer) error, x *exchange) ([]byte, error) {
	waitStart := time.Now()
	select {
	case h.slots <- struct{}{}:
	default:
		if h.queued != nil {
			h.queued()
		}
		select {
		case h.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("funcurl: waiting for the function: %w", ctx.Err())
		}
	}
	defer func() { <-h.slots }()
	// A slot and a departed client can be ready together; select may pick
	// either.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("funcurl: waiting for the function: %w", err)
	}
	x.wait = time.Since(waitStart)

	pr, pw := io.Pipe()
	written := make(chan struct{})
	go func() {
		defer close(written)
		pw.CloseWithError(writeBody(pw))
	}()
	inv.Event = pr
	start := time.Now()
	payload, err := h.invoker.Invoke(context.WithoutCancel(ctx), inv)
	x.invoke = time.Since(start)
	// An invoker that stopped reading must not leave the writer blocked,
	// and the spooled body must outlive the writer.
	pr.CloseWithError(errors.New("funcurl: the invocation is over"))
	<-written
	// The invoker's errors say what failed; the log line says for which
	// request.
	return payload, err
}

// errFunction is a function that failed rather than answered.
var errFunction = errors.New("funcurl: the function failed")

// respond writes the function's response as the Function URL does.
func (h *Handler) respond(w http.ResponseWriter, payload []byte, x *exchange) error {
	if len(payload) > MaxResponseSize {
		return fmt.Errorf("funcurl: the response payload is over the %d-byte limit", MaxResponseSize)
	}
	resp, err := parseResponse(payload)
	if err != nil {
		return err
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		if body, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
			return fmt.Errorf("funcurl: the response body is not valid base64: %w", err)
		}
	}
	hdr := w.Header()
	// The request and trace IDs are the front end's, and so is framing.
	id, trace := hdr.Get("X-Amzn-Requestid"), hdr.Get("X-Amzn-Trace-Id")
	for k, v := range resp.Headers {
		hdr.Set(k, v)
	}
	for _, c := range resp.Cookies {
		hdr.Add("Set-Cookie", c)
	}
	hdr.Set("X-Amzn-Requestid", id)
	hdr.Set("X-Amzn-Trace-Id", trace)
	hdr.Del("Transfer-Encoding")
	hdr.Del("Connection")
	if _, ok := hdr["Content-Type"]; !ok {
		// No type from the function: send none rather than a sniffed one.
		hdr["Content-Type"] = nil
	}
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	x.status = resp.StatusCode
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
	return nil
}

// parseResponse reads a response payload as a Function URL does. A JSON
// payload without a statusCode is the body of a 200 application/json
// response. An error object (errorMessage and errorType, which the
// emulator returns in place of a response, where Lambda would flag it
// with X-Amz-Function-Error) and anything that is not JSON are failures.
func parseResponse(payload []byte) (events.LambdaFunctionURLResponse, error) {
	type probe struct {
		StatusCode   json.RawMessage `json:"statusCode"`
		ErrorMessage json.RawMessage `json:"errorMessage"`
		ErrorType    json.RawMessage `json:"errorType"`
	}
	var p probe
	if err := json.Unmarshal(payload, &p); err != nil {
		if !json.Valid(payload) {
			return events.LambdaFunctionURLResponse{}, fmt.Errorf("%w: the response is not JSON: %.200q", errFunction, payload)
		}
		if trimmed := trimSpace(payload); trimmed[0] == '{' {
			return events.LambdaFunctionURLResponse{}, fmt.Errorf("%w: malformed response: %v", errFunction, err)
		}
		p = probe{} // a string, a number, an array: the body of a 200
	}
	switch {
	case p.StatusCode != nil:
		var resp events.LambdaFunctionURLResponse
		if err := json.Unmarshal(payload, &resp); err != nil {
			return resp, fmt.Errorf("%w: malformed response: %v", errFunction, err)
		}
		// 1xx would leave the exchange open; nothing else is a status.
		if resp.StatusCode < 200 || resp.StatusCode > 599 {
			return resp, fmt.Errorf("%w: statusCode %d is no HTTP status", errFunction, resp.StatusCode)
		}
		return resp, nil
	case p.ErrorMessage != nil && p.ErrorType != nil:
		return events.LambdaFunctionURLResponse{}, fmt.Errorf("%w: %.500s", errFunction, payload)
	}
	return events.LambdaFunctionURLResponse{
		StatusCode: http.StatusOK,
		Headers:    map[string]string{"content-type": "application/json"},
		Body:       string(payload),
	}, nil
}

func trimSpace(p []byte) []byte {
	for len(p) > 0 && (p[0] == ' ' || p[0] == '\t' || p[0] == '\n' || p[0] == '\r') {
		p = p[1:]
	}
	return p
}

// failSpool answers a body that could not be spooled.
func (h *Handler) failSpool(w http.ResponseWriter, x *exchange, err error) {
	var maxBytes *http.MaxBytesError
	switch {
	case errors.As(err, &maxBytes), errors.Is(err, spool.ErrTooLarge):
		h.tooLarge(w, x, err)
	case errors.Is(err, spool.ErrIncomplete), errors.Is(err, spool.ErrTooLong), errors.Is(err, spool.ErrRead),
		errors.Is(err, context.Canceled), errors.Is(err, os.ErrDeadlineExceeded):
		// The client's doing: it went away, stalled or lied about the length.
		h.fail(w, x, http.StatusBadRequest, "Bad Request", err)
	default:
		h.fail(w, x, http.StatusInternalServerError, msgInternal, err)
	}
}

// fail answers as the Function URL itself does, with a JSON message.
func (h *Handler) fail(w http.ResponseWriter, x *exchange, status int, message string, err error) {
	h.writeJSON(w, x, status, struct {
		Message string `json:"message"`
	}{message}, err)
}

// writeJSON answers for the Function URL itself, not the function.
func (h *Handler) writeJSON(w http.ResponseWriter, x *exchange, status int, v any, err error) {
	x.status, x.err = status, err
	body, _ := json.Marshal(v)
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// tooLarge refuses an event over MaxRequestSize, before the function runs,
// as the API refuses a body over its limit: too_large, from the API's
// catalogue. Its message names the limit it hit, the Function URL's, and
// the way around it, which the API's own too_large cannot know.
func (h *Handler) tooLarge(w http.ResponseWriter, x *exchange, err error) {
	e := apierr.Of(wire.CodeTooLarge)
	e.Message, e.RequestID = msgTooLarge, x.id
	h.writeJSON(w, x, e.Status, e.Response(), err)
}

// bodyReader counts the bytes of a request body and pushes the read
// deadline forward before each read, so a body is aborted after
// ReadTimeout without a byte, however long it runs.
type bodyReader struct {
	r       io.Reader
	rc      *http.ResponseController
	timeout time.Duration
	n       int64
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.timeout > 0 {
		// ErrNotSupported (a test's recorder) leaves the body without a
		// limit, which is all such a transport needs.
		_ = b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}
