package funcurl

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// hopHeaders never reach the function: they describe the client's
// connection to the Function URL's front end, which ends there.
var hopHeaders = map[string]bool{
	"connection":        true,
	"expect":            true,
	"keep-alive":        true,
	"proxy-connection":  true,
	"te":                true,
	"trailer":           true,
	"transfer-encoding": true,
	"upgrade":           true,
}

// event is a Function URL's request event (payload format 2.0), in the
// order AWS documents it. events.LambdaFunctionURLRequest, which functions
// decode it into, has no routeKey or stage; fields a Function URL sets to
// null (authorizer without IAM auth, pathParameters, stageVariables) are
// left out, as AWS may. Body is spliced in by frame, before the last field.
type event struct {
	Version               string            `json:"version"`
	RouteKey              string            `json:"routeKey"`
	RawPath               string            `json:"rawPath"`
	RawQueryString        string            `json:"rawQueryString"`
	Cookies               []string          `json:"cookies,omitempty"`
	Headers               map[string]string `json:"headers"`
	QueryStringParameters map[string]string `json:"queryStringParameters,omitempty"`
	RequestContext        requestContext    `json:"requestContext"`
	IsBase64Encoded       bool              `json:"isBase64Encoded"`
}

type requestContext struct {
	AccountID    string                                                `json:"accountId"`
	APIID        string                                                `json:"apiId"`
	DomainName   string                                                `json:"domainName"`
	DomainPrefix string                                                `json:"domainPrefix"`
	HTTP         events.LambdaFunctionURLRequestContextHTTPDescription `json:"http"`
	RequestID    string                                                `json:"requestId"`
	RouteKey     string                                                `json:"routeKey"`
	Stage        string                                                `json:"stage"`
	Time         string                                                `json:"time"`
	TimeEpoch    int64                                                 `json:"timeEpoch"`
}

// newEvent describes r as a deployed Function URL does, without its body:
// the body is streamed in later, between the halves frame returns.
func newEvent(r *http.Request, requestID, traceID string, now time.Time) *event {
	host := r.Host
	hostname := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		hostname = h
	}
	prefix, _, _ := strings.Cut(hostname, ".")
	sourceIP := r.RemoteAddr
	if h, _, err := net.SplitHostPort(sourceIP); err == nil {
		sourceIP = h
	}

	headers := map[string]string{}
	var cookies []string
	for k, vs := range r.Header {
		k = strings.ToLower(k)
		switch {
		case hopHeaders[k]:
			continue
		case k == "cookie":
			// Payload 2.0 lists the cookies one by one, and a Function URL
			// keeps the header too (aws-lambda-go's lambdaurl/testdata,
			// captured from AWS, has both). Several Cookie lines join as
			// one, with the separator cookies take within a line.
			for _, v := range vs {
				for c := range strings.SplitSeq(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						cookies = append(cookies, c)
					}
				}
			}
			headers[k] = strings.Join(vs, "; ")
			continue
		}
		headers[k] = strings.Join(vs, ",")
	}
	headers["host"] = host
	// The front end appends the peer's address to whatever the client
	// claimed, and says how the client reached it.
	if xff := headers["x-forwarded-for"]; xff != "" {
		headers["x-forwarded-for"] = xff + ", " + sourceIP
	} else {
		headers["x-forwarded-for"] = sourceIP
	}
	headers["x-forwarded-proto"] = "http"
	if r.TLS != nil {
		headers["x-forwarded-proto"] = "https"
	}
	headers["x-forwarded-port"] = localPort(r)
	headers["x-amzn-trace-id"] = traceID

	return &event{
		Version:               "2.0",
		RouteKey:              "$default",
		RawPath:               rawPath(r),
		RawQueryString:        r.URL.RawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: queryParameters(r.URL.RawQuery),
		RequestContext: requestContext{
			// What a Function URL with auth type NONE sends.
			AccountID:    "anonymous",
			APIID:        prefix,
			DomainName:   host,
			DomainPrefix: prefix,
			HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{
				Method:    r.Method,
				Path:      r.URL.Path,
				Protocol:  r.Proto,
				SourceIP:  sourceIP,
				UserAgent: r.UserAgent(),
			},
			RequestID: requestID,
			RouteKey:  "$default",
			Stage:     "$default",
			Time:      now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch: now.UnixMilli(),
		},
	}
}

// rawPath is the path exactly as the client sent it, still escaped, so the
// function decodes and validates names itself.
func rawPath(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		p, _, _ := strings.Cut(r.RequestURI, "?")
		return p
	}
	return r.URL.EscapedPath()
}

// queryParameters joins repeated parameters with commas, as payload 2.0
// does; a query without parameters gives none.
func queryParameters(raw string) map[string]string {
	if raw == "" {
		return nil
	}
	// A malformed pair is skipped; what parsed is still passed on.
	q, _ := url.ParseQuery(raw)
	if len(q) == 0 {
		return nil
	}
	m := make(map[string]string, len(q))
	for k, vs := range q {
		m[k] = strings.Join(vs, ",")
	}
	return m
}

func localPort(r *http.Request) string {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, port, err := net.SplitHostPort(a.String()); err == nil {
			return port
		}
	}
	if _, port, err := net.SplitHostPort(r.Host); err == nil {
		return port
	}
	if r.TLS != nil {
		return "443"
	}
	return "80"
}

// frame marshals ev and splits it where the body goes: head ends with `"body":"` and tail begins with the closing quote.
// whole is the event without a body field at all.
func frame(ev *event, base64Body bool) (head, tail, whole []byte, err error) {
	ev.IsBase64Encoded = base64Body
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		return nil, nil, nil, fmt.Errorf("funcurl: marshal event: %w", err)
	}
	whole = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	// isBase64Encoded is the struct's last field, and the only place this
	// text can appear unescaped.
	i := bytes.LastIndex(whole, []byte(`,"isBase64Encoded":`))
	if i < 0 {
		return nil, nil, nil, fmt.Errorf("funcurl: marshal event: no isBase64Encoded field in %.100q", whole)
	}
	head = append(whole[:i:i], `,"body":"`...)
	tail = append([]byte{'"'}, whole[i:]...)
	return head, tail, whole, nil
}

// scanText reports whether r is valid UTF-8 and, if it is, how long it is
// once escaped as a JSON string's contents by jsonEscaper.
func scanText(r io.Reader) (escaped int64, valid bool, err error) {
	buf := make([]byte, 64<<10)
	carry := 0 // bytes of an incomplete rune kept at the start of buf
	for {
		n, rerr := r.Read(buf[carry:])
		n += carry
		end := n
		if rerr == nil {
			// A rune cut by the read boundary is checked with the next read.
			end = completePrefix(buf[:n])
		}
		if !utf8.Valid(buf[:end]) {
			return 0, false, nil
		}
		for _, c := range buf[:end] {
			escaped += int64(escapedLen(c))
		}
		carry = copy(buf, buf[end:n])
		if rerr == io.EOF {
			return escaped, carry == 0, nil
		}
		if rerr != nil {
			return 0, false, fmt.Errorf("funcurl: read spooled body: %w", rerr)
		}
	}
}

// completePrefix returns the length of p without a trailing incomplete rune.
func completePrefix(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax; i-- {
		if utf8.RuneStart(p[i]) {
			if utf8.FullRune(p[i:]) {
				return len(p)
			}
			return i
		}
	}
	return len(p)
}

func escapedLen(c byte) int {
	switch {
	case c == '"', c == '\\', c == '\n', c == '\r', c == '\t':
		return 2
	case c < 0x20:
		return len(`\u0000`)
	}
	return 1
}

// jsonEscaper writes valid UTF-8 as the contents of a JSON string. Only
// ASCII bytes need escaping, so it works byte by byte across writes.
type jsonEscaper struct{ w io.Writer }

func (e jsonEscaper) Write(p []byte) (int, error) {
	const hexDigits = "0123456789abcdef"
	start := 0
	for i, c := range p {
		if escapedLen(c) == 1 {
			continue
		}
		if _, err := e.w.Write(p[start:i]); err != nil {
			return start, err
		}
		var esc []byte
		switch c {
		case '"', '\\':
			esc = []byte{'\\', c}
		case '\n':
			esc = []byte(`\n`)
		case '\r':
			esc = []byte(`\r`)
		case '\t':
			esc = []byte(`\t`)
		default:
			esc = []byte{'\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf]}
		}
		if _, err := e.w.Write(esc); err != nil {
			return i, err
		}
		start = i + 1
	}
	if _, err := e.w.Write(p[start:]); err != nil {
		return start, err
	}
	return len(p), nil
}

// writeEvent streams head, the body encoded, and tail to w.
func writeEvent(w io.Writer, head []byte, body io.Reader, base64Body bool, tail []byte) error {
	// The pipe behind w hands each write to the HTTP client; escaping
	// writes a few bytes at a time, so they are gathered first.
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(head)
	var err error
	if base64Body {
		enc := base64.NewEncoder(base64.StdEncoding, bw)
		if _, err = io.Copy(enc, body); err == nil {
			err = enc.Close()
		}
	} else {
		_, err = io.Copy(jsonEscaper{bw}, body)
	}
	if err != nil {
		return fmt.Errorf("funcurl: stream event body: %w", err)
	}
	bw.Write(tail)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("funcurl: stream event: %w", err)
	}
	return nil
}

// newRequestID returns a random UUID, the form of Lambda's request IDs.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// traceID keeps the client's X-Ray trace header, or starts a trace as the
// front end does.
func traceID(client string, now time.Time) string {
	if client != "" {
		return client
	}
	var b [12]byte
	rand.Read(b[:])
	return fmt.Sprintf("Root=1-%08x-%x", now.Unix(), b)
}
