// Package lambdahttp serves an http.Handler from AWS Lambda: it turns an
// HTTP event into an *http.Request, and the handler's response into the
// response the event's producer expects. It reads Function URL events, API
// Gateway HTTP API (payload 2.0) and REST (payload 1.0) events, the ones
// `sam local start-api` builds for both, and Application Load Balancer
// events (see Dialect). It is an adapter for the default BUFFERED invoke
// mode; aws-lambda-go's lambdaurl only covers RESPONSE_STREAM.
package lambdahttp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"spillway/apierr"
)

// Adapter is a lambda.Handler over an http.Handler.
type Adapter struct {
	h       http.Handler
	refuser refuser // nil: refusals are answered, not logged
}

// refuser is what *api.Handler offers an entrypoint to answer a request it
// cannot hand over, logged and counted as the handler's own refusals are.
type refuser interface {
	Refuse(w http.ResponseWriter, r *http.Request, err error)
}

// New returns an Adapter serving h. When h is an *api.Handler (anything
// with its Refuse method), the events the adapter refuses itself are logged
// and counted by h like every other refused request.
func New(h http.Handler) *Adapter {
	a := &Adapter{h: h}
	a.refuser, _ = h.(refuser)
	return a
}

// Invoke implements lambda.Handler. It decodes the event once, into one
// struct that covers every dialect, and then only streams the body.
func (a *Adapter) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	ctx = withLambdaRequestID(ctx)
	var ev event
	if err := json.Unmarshal(payload, &ev); err != nil {
		return json.Marshal(a.refuse(ctx, shape{}, "", "", fmt.Errorf("%w: not an HTTP event: %v", apierr.ErrBadEvent, err)))
	}
	sh := ev.shape()
	out, err := json.Marshal(a.serve(ctx, &ev, sh))
	if err != nil {
		return nil, err
	}
	// The recorder bounds the encoded size as the body arrives, so this
	// only guards against a bound that is wrong.
	if len(out) > sh.limit() {
		return json.Marshal(a.refuse(ctx, sh, ev.method(sh.dialect), ev.path(sh.dialect),
			fmt.Errorf("%w: %d bytes encoded, over the %d-byte cap", apierr.ErrResponseTooLarge, len(out), sh.limit())))
	}
	return out, nil
}

// Serve runs one Function URL event through the handler.
func (a *Adapter) Serve(ctx context.Context, fu *events.LambdaFunctionURLRequest) events.LambdaFunctionURLResponse {
	ctx = withLambdaRequestID(ctx)
	ev := event{
		Version: fu.Version, RawPath: fu.RawPath, RawQueryString: fu.RawQueryString, Cookies: fu.Cookies,
		Headers: fu.Headers, Body: fu.Body, IsBase64Encoded: fu.IsBase64Encoded,
	}
	ev.RequestContext.DomainName = fu.RequestContext.DomainName
	ev.RequestContext.HTTP.Method = fu.RequestContext.HTTP.Method
	ev.RequestContext.HTTP.Path = fu.RequestContext.HTTP.Path
	ev.RequestContext.HTTP.Protocol = fu.RequestContext.HTTP.Protocol
	ev.RequestContext.HTTP.SourceIP = fu.RequestContext.HTTP.SourceIP
	resp := a.serve(ctx, &ev, shape{dialect: FunctionURL})
	return events.LambdaFunctionURLResponse{
		StatusCode: resp.StatusCode, Headers: resp.Headers, Body: resp.Body,
		IsBase64Encoded: resp.IsBase64Encoded, Cookies: resp.Cookies,
	}
}

func withLambdaRequestID(ctx context.Context) context.Context {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		return apierr.WithRequestID(ctx, lc.AwsRequestID)
	}
	return ctx
}

func (a *Adapter) serve(ctx context.Context, ev *event, sh shape) *response {
	req, err := newRequest(ctx, ev, sh.dialect)
	if err != nil {
		return a.refuse(ctx, sh, ev.method(sh.dialect), ev.path(sh.dialect), err)
	}
	// A HEAD response has no body, whatever the handler writes: an error
	// body included, as net/http eats it.
	rec := &recorder{header: http.Header{}, limit: sh.limit(), head: req.Method == http.MethodHead}
	a.h.ServeHTTP(rec, req)
	if rec.err != nil {
		// The handler has seen Write fail and logged and counted the
		// request with this error; the response is the error alone.
		out := &recorder{header: http.Header{}, limit: sh.limit()}
		apierr.WriteError(apierr.WithRequestID(ctx, rec.header.Get("X-Request-Id")), out, rec.err)
		return out.response(sh)
	}
	return rec.response(sh)
}

// refuse answers err for an event the handler never sees.
func (a *Adapter) refuse(ctx context.Context, sh shape, method, path string, err error) *response {
	rec := &recorder{header: http.Header{}, limit: sh.limit()}
	if a.refuser != nil {
		// A stand-in for the request the event could not become, so that
		// the refusal is logged as any other, under the same request ID.
		r := &http.Request{Method: method, URL: &url.URL{Path: path}, Header: http.Header{}, Body: http.NoBody}
		a.refuser.Refuse(rec, r.WithContext(ctx), err)
	} else {
		apierr.WriteError(ctx, rec, err)
	}
	return rec.response(sh)
}

// newRequest builds the request an event describes. Header names are
// matched case-insensitively (Function URLs send them lower-case, sam local
// Title-Cased). The path reaches the handler escaped, as a client sent it:
// a dialect that delivers it decoded has it escaped again, segment by
// segment, so that the handler, which decodes it once, sees every name as
// it was meant. A base64 body is decoded as a stream, and its decoded
// length is computed up front so that size checks run before the first
// byte is decoded.
func newRequest(ctx context.Context, ev *event, d Dialect) (*http.Request, error) {
	method, p := ev.method(d), ev.path(d)
	if method == "" {
		return nil, fmt.Errorf("%w: a %s event without a method", apierr.ErrBadEvent, d)
	}
	if p == "" {
		return nil, fmt.Errorf("%w: a %s event without a path", apierr.ErrBadEvent, d)
	}
	var query string
	switch d {
	case HTTPAPI, REST:
		p = escapePath(p)
	}
	switch d {
	case FunctionURL, HTTPAPI:
		query = ev.RawQueryString
	case REST:
		query = ev.restQuery()
	case ALB:
		query = ev.albQuery()
	}
	if !strings.HasPrefix(p, "/") {
		// An absolute URL or a relative path is no origin-form path.
		return nil, fmt.Errorf("%w: the path %q does not begin with /", apierr.ErrBadRequest, p)
	}
	target := p
	if query != "" {
		target += "?" + query
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, fmt.Errorf("%w: bad path: %v", apierr.ErrBadRequest, err)
	}

	var body io.Reader
	var length int64
	if ev.IsBase64Encoded {
		n, err := DecodedLen(ev.Body)
		if err != nil {
			return nil, err
		}
		body, length = &base64Body{r: base64.NewDecoder(base64.StdEncoding, strings.NewReader(ev.Body))}, n
	} else {
		body, length = strings.NewReader(ev.Body), int64(len(ev.Body))
	}

	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", apierr.ErrBadRequest, err)
	}
	// NewRequestWithContext sets the length only for bytes and strings
	// readers; the decoded length is ours to give.
	req.ContentLength = length
	if length == 0 {
		req.Body = http.NoBody
	}
	req.URL = u
	req.RequestURI = target
	req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/1.1", 1, 1
	proto := ev.RequestContext.HTTP.Protocol
	if d == REST {
		proto = ev.RequestContext.Protocol
	}
	if proto != "" {
		if major, minor, ok := http.ParseHTTPVersion(proto); ok {
			req.Proto, req.ProtoMajor, req.ProtoMinor = proto, major, minor
		}
	}
	if len(ev.MultiValueHeaders) > 0 {
		for k, vs := range ev.MultiValueHeaders {
			k = http.CanonicalHeaderKey(k)
			req.Header[k] = append(req.Header[k], vs...)
		}
	} else {
		for k, v := range ev.Headers {
			// Payload 2.0 joins repeated headers with commas into one value.
			req.Header[http.CanonicalHeaderKey(k)] = []string{v}
		}
	}
	// The body's length is the decoded one, whatever the event claims.
	req.Header.Del("Content-Length")
	if len(ev.Cookies) > 0 {
		req.Header.Set("Cookie", strings.Join(ev.Cookies, "; "))
	}
	req.Host = req.Header.Get("Host")
	if req.Host == "" {
		req.Host = ev.RequestContext.DomainName
	}
	req.Header.Del("Host")
	req.RemoteAddr = ev.RequestContext.HTTP.SourceIP
	if d == REST {
		req.RemoteAddr = ev.RequestContext.Identity.SourceIP
	}
	return req, nil
}

// escapePath escapes a decoded path segment by segment. A "%2F" the client
// sent is a "/" by then, and stays one: the producer has lost the difference.
func escapePath(p string) string {
	var b strings.Builder
	b.Grow(len(p) + len(p)/4)
	for i, seg := range strings.Split(p, "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(url.PathEscape(seg))
	}
	return b.String()
}

// DecodedLen returns the length of the bytes a standard, padded base64
// string decodes to, or an error wrapping apierr.ErrBadRequest when the string
// cannot be valid base64. Line breaks, which the decoder skips, don't count.
func DecodedLen(s string) (int64, error) {
	n := len(s) - strings.Count(s, "\r") - strings.Count(s, "\n")
	if n%4 != 0 {
		return 0, fmt.Errorf("%w: the base64 body's length, %d, is not a multiple of 4", apierr.ErrBadRequest, n)
	}
	pad := 0
	for i := len(s) - 1; i >= 0 && pad < 2; i-- {
		switch s[i] {
		case '=':
			pad++
			continue
		case '\r', '\n':
			continue
		}
		break
	}
	return int64(n/4*3 - pad), nil
}

// base64Body reports corrupt base64 as a bad request.
type base64Body struct{ r io.Reader }

func (b *base64Body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		var corrupt base64.CorruptInputError
		if errors.As(err, &corrupt) {
			err = fmt.Errorf("%w: invalid base64 body: %v", apierr.ErrBadRequest, err)
		}
	}
	return n, err
}

// recorder is the ResponseWriter a buffered Lambda response needs. It
// bounds the encoded response as the body arrives, and refuses a Write that
// would take it past limit.
type recorder struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	limit    int   // the largest encoded response the dialect carries
	overhead int   // a bound on the encoded response without its body, set at the first Write
	textual  bool  // the Content-Type may go as text, set at the first Write
	text     int   // a bound on the body's length as a JSON string
	err      error // wraps apierr.ErrResponseTooLarge once a Write was refused
	head     bool  // the request is a HEAD: Write discards the body
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	if r.head {
		return len(p), nil
	}
	if r.err != nil {
		return 0, r.err
	}
	if r.overhead == 0 {
		r.overhead = headerBound(r.header)
		r.textual = IsText(r.header.Get("Content-Type"))
	}
	n := r.body.Len() + len(p)
	size := (n + 2) / 3 * 4
	if r.textual {
		// A text body that is not valid UTF-8 goes as base64 all the
		// same, decided at the end: the larger bound covers both.
		r.text += jsonLenBound(p)
		size = max(size, r.text)
	}
	if r.overhead+size > r.limit {
		r.err = fmt.Errorf("%w: a body of %d bytes or more, over the %d-byte response cap once encoded",
			apierr.ErrResponseTooLarge, n, r.limit)
		r.body = bytes.Buffer{}
		return 0, r.err
	}
	return r.body.Write(p)
}

// headerBound bounds the encoded size of a response without its body: a
// header name or value byte takes at most six bytes in JSON, each value
// some punctuation, and the constant covers the field names, the status
// and its description.
func headerBound(h http.Header) int {
	n := 256
	for k, vs := range h {
		for _, v := range vs {
			n += 6*(len(k)+len(v)) + 8
		}
	}
	return n
}

// jsonLenBound bounds the length p adds to a JSON string as encoding/json
// writes it. A multi-byte rune takes its own bytes, but U+2028 and U+2029
// take six: counting every 0xE2 lead byte as four covers them.
func jsonLenBound(p []byte) int {
	n := 0
	for _, c := range p {
		switch {
		case c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t':
			n += 2
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			n += 6
		case c == 0xE2:
			n += 4
		default:
			n++
		}
	}
	return n
}

// response is every dialect's response; each fills the fields it takes.
type response struct {
	StatusCode        int                 `json:"statusCode"`
	StatusDescription string              `json:"statusDescription,omitempty"`
	Headers           map[string]string   `json:"headers,omitempty"`
	MultiValueHeaders map[string][]string `json:"multiValueHeaders,omitempty"`
	Cookies           []string            `json:"cookies,omitempty"`
	Body              string              `json:"body"`
	IsBase64Encoded   bool                `json:"isBase64Encoded"`
}

func (r *recorder) response(sh shape) *response {
	resp := &response{StatusCode: r.status}
	if resp.StatusCode == 0 {
		resp.StatusCode = http.StatusOK
	}
	// Payload 1.0 takes every value of a header; payload 2.0 joins them
	// with commas and carries Set-Cookie apart. An ALB answers in the
	// shape its target group's multi-value setting gave the request.
	multi := sh.dialect == REST || sh.dialect == ALB && sh.multi
	if multi {
		resp.MultiValueHeaders = make(map[string][]string, len(r.header))
	} else {
		resp.Headers = make(map[string]string, len(r.header))
	}
	for k, vs := range r.header {
		switch {
		case multi:
			resp.MultiValueHeaders[strings.ToLower(k)] = vs
		case k == "Set-Cookie" && sh.dialect != ALB:
			resp.Cookies = append(resp.Cookies, vs...)
		default:
			resp.Headers[strings.ToLower(k)] = strings.Join(vs, ",")
		}
	}
	if sh.dialect == ALB {
		resp.StatusDescription = strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
	}
	body := r.body.Bytes()
	if IsText(r.header.Get("Content-Type")) && utf8.Valid(body) {
		resp.Body = string(body)
	} else if len(body) > 0 {
		resp.Body = base64.StdEncoding.EncodeToString(body)
		resp.IsBase64Encoded = true
	}
	return resp
}

// IsText reports the content types a Function URL passes as plain text,
// requests and responses alike. Everything else, multipart and a missing
// Content-Type included, travels base64-encoded.
func IsText(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		mt == "application/json", strings.HasSuffix(mt, "+json"),
		mt == "application/xml", strings.HasSuffix(mt, "+xml"),
		mt == "application/javascript":
		return true
	}
	return false
}
