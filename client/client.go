// Package client pushes files to a Spillway server over HTTP: small files
// with one raw PUT, large ones through the multipart contract in
// docs/MULTIPART.md, in parallel parts sent straight to the part URLs the
// server hands out, resumable across runs. It speaks only HTTP, so it works
// the same against the local server and a deployed Function URL.
package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"spillway/wire"
)

// DefaultDirectMax is the largest file sent with one PUT: a deployed
// Function URL takes about 4.7 MB of binary per request, so anything larger
// has to go around it in parts.
const DefaultDirectMax = 4 << 20

// DefaultParallel is how many parts are sent at once.
const DefaultParallel = 4

// DefaultAttempts is how often one part is tried before the push fails.
const DefaultAttempts = 5

// DefaultRetryWait is the first wait between two attempts; it doubles with
// each attempt, up to maxRetryWait.
const DefaultRetryWait = 500 * time.Millisecond

const maxRetryWait = 10 * time.Second

// maxRetryAfter caps the wait a server asks for with Retry-After.
const maxRetryAfter = time.Minute

// emptySHA256 is the payload hash of a request without a body.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// Options configure a Client. The zero value is usable.
type Options struct {
	// Token, when set, is sent as "Authorization: Bearer <Token>" to the
	// server's own routes, never to part URLs.
	Token string
	// Signer, when set, signs every request to the server's own routes,
	// such as with SigV4 for a Function URL with AWS_IAM auth. It cannot be
	// combined with Token: both would need the Authorization header.
	Signer Signer
	// HTTPClient sends requests to the server's own routes. Nil: a client
	// of its own over a clone of http.DefaultTransport.
	HTTPClient *http.Client
	// PartHTTPClient sends the parts. It is separate so that part URLs,
	// which are presigned or self-signed, never pass through anything that
	// adds credentials to HTTPClient's requests, and so that its idle
	// connections match Parallel. Nil: a client of its own.
	PartHTTPClient *http.Client
	// Parallel is how many parts are sent at once. Zero: DefaultParallel.
	Parallel int
	// DirectMax is the largest file sent with one PUT /files/{name}.
	// Zero: DefaultDirectMax. Negative: every non-empty file goes in parts.
	DirectMax int64
	// PartSize is the part size a multipart upload declares, which the
	// client needs before it reads the file, to checksum each part in the
	// same read. Zero: the server's own choice for the size (16 MiB, more
	// past 10,000 parts); servers take 5 MiB to 5 GiB.
	PartSize int64
	// Attempts is how often a part (or a direct PUT) is tried before the
	// push fails. Zero: DefaultAttempts.
	Attempts int
	// RetryWait is the first wait between attempts. Zero: DefaultRetryWait.
	RetryWait time.Duration
	// StateDir holds one small file per unfinished multipart upload, so
	// that a later run resumes it. Empty: os.UserCacheDir()/spillway/push.
	StateDir string
	// NoResume neither resumes earlier uploads nor records new ones; a
	// multipart push that fails before its completion aborts its upload.
	NoResume bool
	// Progress, when set, is told how a push advances. It is called one
	// call at a time, from the goroutines that read the file, and never
	// after Push returns; it must be quick.
	Progress func(Progress)
}

// Client pushes files to one Spillway server. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	opts     Options
	api      *http.Client
	parts    *http.Client
	stateDir string
}

// New returns a client for the server at baseURL, such as
// "http://127.0.0.1:8080" or a Function URL. A path in baseURL is kept as a
// prefix of every route.
func New(baseURL string, opts Options) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: server URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: server URL %q: want http:// or https:// and a host", baseURL)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: server URL %q: want no user, query or fragment", baseURL)
	}
	if opts.Token != "" && opts.Signer != nil {
		return nil, errors.New("client: a token and a signer both need the Authorization header; use one")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultParallel
	}
	if opts.DirectMax == 0 {
		opts.DirectMax = DefaultDirectMax
	}
	if opts.Attempts <= 0 {
		opts.Attempts = DefaultAttempts
	}
	if opts.RetryWait <= 0 {
		opts.RetryWait = DefaultRetryWait
	}
	c := &Client{base: u, opts: opts, api: opts.HTTPClient, parts: opts.PartHTTPClient}
	if c.api == nil {
		c.api = &http.Client{Transport: newTransport(2)}
	}
	if c.parts == nil {
		c.parts = &http.Client{Transport: newTransport(opts.Parallel)}
	}
	if !opts.NoResume {
		c.stateDir = opts.StateDir
		if c.stateDir == "" {
			cache, err := os.UserCacheDir()
			if err != nil {
				return nil, fmt.Errorf("client: state directory: %w (set StateDir or NoResume)", err)
			}
			c.stateDir = filepath.Join(cache, "spillway", "push")
		}
	}
	return c, nil
}

// newTransport keeps as many idle connections per host as requests run at
// once, since the default of two would make parallel parts redial.
func newTransport(conns int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = max(conns, 2)
	return t
}

// Error is an error answered by the server or by a part URL's storage.
// Use errors.As to get it from a push's error.
type Error struct {
	Status    int    // the HTTP status
	Code      string // the API's error code, such as "exists"; "" when the body had none
	Message   string // the server's fixed message for Code
	Limit     int64  // on too_large, the largest file the server accepts, in bytes; 0 when not given
	RequestID string // quote it to the server's operator: its log has the detail under this ID

	retryAfter time.Duration // from a Retry-After header, for the backoff
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		b.WriteString(" (" + e.Code + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Limit > 0 {
		fmt.Fprintf(&b, " (the limit is %d bytes)", e.Limit)
	}
	if e.RequestID != "" {
		b.WriteString(" [request " + e.RequestID + "]")
	}
	return b.String()
}

// readError turns a response that is not a success into an *Error, from
// the API's JSON or, for part URLs on S3, its XML.
func readError(resp *http.Response) *Error {
	e := &Error{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		e.retryAfter = time.Duration(secs) * time.Second
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var j wire.ErrorResponse
	var x struct {
		Code      string `xml:"Code"`
		Message   string `xml:"Message"`
		RequestID string `xml:"RequestId"`
	}
	switch {
	case json.Unmarshal(body, &j) == nil && j.Error.Code != "":
		e.Code, e.Message, e.Limit = string(j.Error.Code), j.Error.Message, j.Error.Limit
		if j.Error.RequestID != "" {
			e.RequestID = j.Error.RequestID
		}
	case xml.Unmarshal(body, &x) == nil && x.Code != "":
		e.Code, e.Message = x.Code, x.Message
		if e.RequestID == "" {
			e.RequestID = x.RequestID
		}
	default:
		e.Message = strings.TrimSpace(string(body))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200] + "…"
		}
	}
	return e
}

// isCode reports whether err is an API error with this status and code
// (any code when code is empty).
func isCode(err error, status int, code wire.Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status && (code == "" || e.Code == string(code))
}

// route returns the URL of one of the server's routes; segments are
// escaped one by one so that a name's slashes stay path separators.
func (c *Client) route(query url.Values, segments ...string) string {
	u := *c.base
	var p, raw strings.Builder
	p.WriteString(u.Path)
	raw.WriteString(u.EscapedPath())
	for _, s := range segments {
		for seg := range strings.SplitSeq(s, "/") {
			p.WriteString("/" + seg)
			raw.WriteString("/" + url.PathEscape(seg))
		}
	}
	u.Path, u.RawPath = p.String(), raw.String()
	u.RawQuery = query.Encode()
	return u.String()
}

// apiRequest builds a request to one of the server's own routes, with its
// credentials. payloadHash is the body's hex SHA-256, for signing.
func (c *Client) apiRequest(ctx context.Context, method, target string, body io.Reader, size int64, payloadHash string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	if err := c.authorize(ctx, req, payloadHash); err != nil {
		return nil, err
	}
	return req, nil
}

// authorize adds the credentials for the server's own routes to req, whose
// other headers are final: a signature covers them.
func (c *Client) authorize(ctx context.Context, req *http.Request, payloadHash string) error {
	switch {
	case c.opts.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	case c.opts.Signer != nil:
		req.Header.Set("X-Amz-Content-Sha256", payloadHash)
		if err := c.opts.Signer.Sign(ctx, req, payloadHash); err != nil {
			// Missing credentials stay missing: no point in retrying.
			return permanent{fmt.Errorf("sign %s %s: %w", req.Method, req.URL.Path, err)}
		}
	}
	return nil
}

// doJSON sends in (nil: no body) to one of the server's routes and decodes
// a response of status want into out. A failure is tried again when that
// is safe: any retryable one for GET and DELETE, and for POST only those
// where the server did nothing (busy, or no connection at all), since a
// create or complete whose answer was lost may well have happened.
func (c *Client) doJSON(ctx context.Context, method, target string, in any, want int, out any) error {
	var body []byte
	hash := emptySHA256
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		hash = hex.EncodeToString(sum[:])
	}
	idempotent := method == http.MethodGet || method == http.MethodDelete
	for attempt := 1; ; attempt++ {
		err := c.doJSONOnce(ctx, method, target, body, hash, want, out)
		if err == nil || attempt >= c.opts.Attempts || !retryable(ctx, err) ||
			!(idempotent || busy(err) || notConnected(err)) {
			return err
		}
		if err := c.backoff(ctx, attempt, err); err != nil {
			return err
		}
	}
}

func (c *Client) doJSONOnce(ctx context.Context, method, target string, body []byte, hash string, want int, out any) error {
	req, err := c.apiRequest(ctx, method, target, bytes.NewReader(body), int64(len(body)), hash)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.api.Do(req)
	if err != nil {
		return err
	}
	defer drainClose(resp)
	if resp.StatusCode != want {
		return readError(resp)
	}
	if out == nil {
		return nil
	}
	if err := jsonDecode(resp.Body, out); err != nil {
		return permanent{fmt.Errorf("%s %s: decode %d response: %w", method, req.URL.Path, resp.StatusCode, err)}
	}
	return nil
}

// notConnected reports whether err happened before a request could be
// sent: the server never saw it.
func notConnected(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// drainClose reads what is left of a small response before closing it, so
// that its connection can carry the next request.
func drainClose(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

func jsonDecode(r io.Reader, out any) error {
	return json.NewDecoder(io.LimitReader(r, 16<<20)).Decode(out)
}

// permanent marks an error that trying again cannot fix, or that must not
// be tried again, such as a bad answer to a request that succeeded.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// retryable reports whether an attempt that failed with err may succeed
// when tried again: anything but a refusal from the server and a cancelled
// push. Attempts are bounded, so retrying the odd hopeless network error
// (a bad certificate) costs little.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if errors.As(err, new(permanent)) {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		switch e.Status {
		case http.StatusRequestTimeout, http.StatusTooManyRequests,
			http.StatusInternalServerError, http.StatusBadGateway,
			http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	return true
}

// busy reports whether err is the server or storage asking to come back
// later, before it did anything: safe to retry even for requests that are
// not idempotent.
func busy(err error) bool {
	return isCode(err, http.StatusServiceUnavailable, "") || isCode(err, http.StatusTooManyRequests, "")
}

// backoff waits after the failed attempt number attempt, for err, or
// returns early with the context's error.
func (c *Client) backoff(ctx context.Context, attempt int, err error) error {
	d := c.opts.RetryWait << (attempt - 1)
	if d > maxRetryWait || d <= 0 {
		d = maxRetryWait
	}
	// Jitter, so that parts which failed together do not retry together.
	d = d/2 + rand.N(d/2+1)
	if e := (*Error)(nil); errors.As(err, &e) && e.retryAfter > d {
		d = min(e.retryAfter, maxRetryAfter)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
