// Package lambdahttp serves an http.Handler from AWS Lambda: it turns a
// Function URL event, or the HttpApi 2.0 event that `sam local start-api`
// sends, into an *http.Request, and the handler's response into the event
// response. It is an adapter for the default BUFFERED invoke mode;
// aws-lambda-go's lambdaurl only covers RESPONSE_STREAM.
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
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"spillway/api"
)

// Adapter is a lambda.Handler over an http.Handler.
type Adapter struct {
	h http.Handler
}

// New returns an Adapter serving h.
func New(h http.Handler) *Adapter { return &Adapter{h: h} }

// Invoke implements lambda.Handler. It decodes the event itself so that the
// body is unmarshalled once and then only streamed, never copied whole.
func (a *Adapter) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var ev events.LambdaFunctionURLRequest
	var resp events.LambdaFunctionURLResponse
	if err := json.Unmarshal(payload, &ev); err != nil {
		resp = a.refuse(withRequestID(ctx), &ev, fmt.Errorf("%w: the event is not a Function URL or HttpApi 2.0 event: %v", api.ErrBadRequest, err))
	} else {
		resp = a.Serve(ctx, &ev)
	}
	return json.Marshal(resp)
}

// Serve runs one event through the handler.
func (a *Adapter) Serve(ctx context.Context, ev *events.LambdaFunctionURLRequest) events.LambdaFunctionURLResponse {
	ctx = withRequestID(ctx)
	req, err := NewRequest(ctx, ev)
	if err != nil {
		return a.refuse(ctx, ev, err)
	}
	rec := &recorder{header: http.Header{}}
	a.h.ServeHTTP(rec, req)
	return rec.response()
}

// NewRequest builds the request an event describes. Header names are
// matched case-insensitively (Function URLs send them lower-case, sam local
// Title-Cased); the path and query come from rawPath and rawQueryString.
// A base64 body is decoded as a stream, and its decoded length is computed
// up front so that size checks run before the first byte is decoded.
func NewRequest(ctx context.Context, ev *events.LambdaFunctionURLRequest) (*http.Request, error) {
	method := ev.RequestContext.HTTP.Method
	if method == "" {
		return nil, fmt.Errorf("%w: the event has no requestContext.http.method", api.ErrBadRequest)
	}
	rawPath := ev.RawPath
	if rawPath == "" {
		rawPath = ev.RequestContext.HTTP.Path
	}
	if !strings.HasPrefix(rawPath, "/") {
		// An absolute URL or a relative path is no origin-form path.
		return nil, fmt.Errorf("%w: rawPath %q does not begin with /", api.ErrBadRequest, rawPath)
	}
	target := rawPath
	if ev.RawQueryString != "" {
		target += "?" + ev.RawQueryString
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, fmt.Errorf("%w: bad rawPath: %v", api.ErrBadRequest, err)
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
		return nil, fmt.Errorf("%w: %v", api.ErrBadRequest, err)
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
	if p := ev.RequestContext.HTTP.Protocol; p != "" {
		if major, minor, ok := http.ParseHTTPVersion(p); ok {
			req.Proto, req.ProtoMajor, req.ProtoMinor = p, major, minor
		}
	}
	for k, v := range ev.Headers {
		// Payload 2.0 joins repeated headers with commas into one value.
		req.Header[http.CanonicalHeaderKey(k)] = []string{v}
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
	return req, nil
}

// DecodedLen returns the length of the bytes a standard, padded base64
// string decodes to, or an error wrapping api.ErrBadRequest when the string
// cannot be valid base64. Line breaks, which the decoder skips, don't count.
func DecodedLen(s string) (int64, error) {
	n := len(s) - strings.Count(s, "\r") - strings.Count(s, "\n")
	if n%4 != 0 {
		return 0, fmt.Errorf("%w: the base64 body's length, %d, is not a multiple of 4", api.ErrBadRequest, n)
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
			err = fmt.Errorf("%w: invalid base64 body: %v", api.ErrBadRequest, err)
		}
	}
	return n, err
}

// recorder is the ResponseWriter a buffered Lambda response needs.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(p)
}

func (r *recorder) response() events.LambdaFunctionURLResponse {
	resp := events.LambdaFunctionURLResponse{StatusCode: r.status, Headers: map[string]string{}}
	if resp.StatusCode == 0 {
		resp.StatusCode = http.StatusOK
	}
	for k, vs := range r.header {
		if k == "Set-Cookie" {
			resp.Cookies = append(resp.Cookies, vs...)
			continue
		}
		resp.Headers[strings.ToLower(k)] = strings.Join(vs, ",")
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

// withRequestID makes the Lambda request ID the API's request ID.
func withRequestID(ctx context.Context) context.Context {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		return api.WithRequestID(ctx, lc.AwsRequestID)
	}
	return ctx
}

// refuser is what api.Handler offers for requests refused before they
// reach it: the answer and the log line with the detail.
type refuser interface {
	Refuse(http.ResponseWriter, *http.Request, error)
}

// refuse answers an event that makes no request.
func (a *Adapter) refuse(ctx context.Context, ev *events.LambdaFunctionURLRequest, err error) events.LambdaFunctionURLResponse {
	rec := &recorder{header: http.Header{}}
	if rf, ok := a.h.(refuser); ok {
		// A stand-in for the request the event could not become, so that
		// the refusal is logged as any other, under the same request ID.
		r := &http.Request{Method: ev.RequestContext.HTTP.Method, URL: &url.URL{Path: ev.RawPath}, Header: http.Header{}, Body: http.NoBody}
		rf.Refuse(rec, r.WithContext(ctx), err)
	} else {
		api.WriteError(ctx, rec, err)
	}
	return rec.response()
}
