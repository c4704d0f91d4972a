// Package hook delivers upload events to the HTTP endpoint a deployment
// names (SPILLWAY_HOOK_URL): a pre-create event that may refuse an upload
// before any byte of it is stored, and a post-finish event once a file is
// published. Each event is a signed JSON POST; see Sign for the scheme.
package hook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The event types.
const (
	PreCreate  = "pre-create"
	PostFinish = "post-finish"
)

// Headers of a delivery.
const (
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256>".
	SignatureHeader = "Spillway-Signature"
	// EventHeader repeats the event's type, for routing without parsing.
	EventHeader = "Spillway-Event"
)

// Event is the JSON body of a delivery.
type Event struct {
	Type      string `json:"type"`
	RequestID string `json:"request_id"`
	// Route is how the file arrives: put, form, multipart, tus or uppy.
	Route string `json:"route"`
	Name  string `json:"name"`
	// Size is the file's size in bytes, -1 when a pre-create does not
	// know it yet (a form part, a tus upload with a deferred length).
	Size int64  `json:"size"`
	User string `json:"user,omitempty"`
	// Finished files only.
	SHA256      string `json:"sha256,omitempty"`
	CRC64NVME   string `json:"crc64nvme,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	Time        string `json:"time"` // RFC 3339, UTC
}

var (
	// ErrRefused is a pre-create that the hook answered with a status
	// outside 2xx. The error is a *Refusal.
	ErrRefused = errors.New("hook: refused")
	// ErrUnavailable is a delivery that got no answer in time (the hook
	// is down, unreachable or slow), or, for post-finish, only 5xx or 429
	// answers until its attempts ran out.
	ErrUnavailable = errors.New("hook: unavailable")
)

// Refusal is a pre-create refused by the hook.
type Refusal struct {
	Status int
	// Message is the hook's own reason, as Message extracts it; empty when
	// its answer gave none that may be shown.
	Message string
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("hook: refused with %d: %q", r.Status, r.Message)
}

func (r *Refusal) Unwrap() error { return ErrRefused }

// MaxMessage bounds the hook's message that reaches the client.
const MaxMessage = 200

// maxAnswer bounds what is read of a hook's answer.
const maxAnswer = 4 << 10

// Message returns what of a refusing answer reaches the client: the
// "message" string of a JSON object body, cut to MaxMessage bytes on a
// character boundary, with control characters replaced by spaces. Any other
// body (text, HTML, a proxy's error page) gives "", since it may say things
// the hook's author never meant for the client.
func Message(body []byte) string {
	var v struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return ' '
		}
		return r
	}, v.Message)
	s = strings.TrimSpace(s)
	for len(s) > MaxMessage {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}

// Sign returns the signature header's value for body sent at t: the HMAC-
// SHA256 under secret of the decimal Unix time, a '.', and the body's
// bytes, as "t=<time>,v1=<lower-case hex>". Signing the time with the body
// lets a receiver refuse an old delivery replayed.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// ErrBadSignature is a signature that Verify refuses.
var ErrBadSignature = errors.New("hook: bad signature")

// Verify checks a delivery's signature header, as a receiver written in Go
// would: the HMAC must match, in constant time, and the signed time must
// be within tolerance of now.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts, sig string
	for f := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: no time", ErrBadSignature)
	}
	got, err := hex.DecodeString(sig)
	if err != nil || !hmac.Equal(got, mac(secret, ts, body)) {
		return fmt.Errorf("%w: the HMAC does not match", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed %s from now", ErrBadSignature, d)
	}
	return nil
}

// Defaults of Config.
const (
	DefaultTimeout  = 3 * time.Second
	DefaultAttempts = 3
	DefaultBackoff  = 250 * time.Millisecond
	// DefaultBudget bounds all the attempts of one post-finish, so that
	// the answer to the upload it follows is never delayed by more.
	DefaultBudget = 8 * time.Second
)

// Config configures a Client.
type Config struct {
	URL    string
	Secret []byte
	// Timeout bounds each attempt. Zero: DefaultTimeout.
	Timeout time.Duration
	// Attempts is how often a post-finish is tried. Zero: DefaultAttempts.
	Attempts int
	// Backoff is the wait before the second attempt, doubled before each
	// next one. Zero: DefaultBackoff.
	Backoff time.Duration
	// Budget bounds a post-finish's attempts and waits together. Zero:
	// DefaultBudget.
	Budget time.Duration
	// HTTPClient sends the deliveries. Nil: a client of its own.
	HTTPClient *http.Client
	// Now is the clock of the signatures. Nil: time.Now.
	Now func() time.Time
}

// Client delivers events to one hook URL. It is safe for concurrent use.
type Client struct {
	cfg Config
}

// New returns a client for cfg.URL.
func New(cfg Config) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Budget <= 0 {
		cfg.Budget = DefaultBudget
	}
	if cfg.HTTPClient == nil {
		// Never follow a redirect: the body would go unsigned elsewhere,
		// or not at all.
		cfg.HTTPClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Client{cfg: cfg}
}

// PreCreate asks the hook whether ev's upload may go ahead, once: nil for
// a 2xx answer, a *Refusal for any other, ErrUnavailable when no answer
// came within the timeout.
func (c *Client) PreCreate(ctx context.Context, ev Event) error {
	ev.Type = PreCreate
	status, body, err := c.send(ctx, ev)
	if err != nil {
		return err
	}
	if status/100 != 2 {
		return &Refusal{Status: status, Message: Message(body)}
	}
	return nil
}

// answerMargin is what PostFinish leaves of ctx's deadline for the answer
// that follows it.
const answerMargin = 500 * time.Millisecond

// PostFinish tells the hook that ev's file is stored. An attempt that
// fails to connect, times out or is answered 5xx or 429 is retried after
// a backoff, up to Attempts tries within Budget. A cancelled ctx (a client
// gone after the publish) does not stop the delivery, but its deadline
// bounds it, less a margin for the answer: on Lambda that is the
// invocation's, so the retries end within it. Any other non-2xx answer is
// not retried. The error says why the last attempt failed.
func (c *Client) PostFinish(ctx context.Context, ev Event) error {
	ev.Type = PostFinish
	budget := c.cfg.Budget
	if dl, ok := ctx.Deadline(); ok {
		budget = min(budget, time.Until(dl)-answerMargin)
	}
	if budget <= 0 {
		return fmt.Errorf("%w: no time left before the deadline", ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), budget)
	defer cancel()
	wait := c.cfg.Backoff
	var last error
	for attempt := 1; attempt <= c.cfg.Attempts; attempt++ {
		status, _, err := c.send(ctx, ev)
		switch {
		case err == nil && status/100 == 2:
			return nil
		case err == nil && status != http.StatusTooManyRequests && status < 500:
			return fmt.Errorf("hook: post-finish answered %d", status)
		case err == nil:
			last = fmt.Errorf("%w: post-finish answered %d", ErrUnavailable, status)
		default:
			last = err
		}
		if attempt == c.cfg.Attempts {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: budget spent after %d attempts: %w", ErrUnavailable, attempt, last)
		case <-t.C:
		}
		wait *= 2
	}
	return fmt.Errorf("after %d attempts: %w", c.cfg.Attempts, last)
}

// send makes one attempt: the answer's status and its first bytes.
func (c *Client) send(ctx context.Context, ev Event) (int, []byte, error) {
	now := c.cfg.Now()
	if ev.Time == "" {
		ev.Time = now.UTC().Format(time.RFC3339Nano)
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return 0, nil, fmt.Errorf("hook: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("hook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(EventHeader, ev.Type)
	req.Header.Set("User-Agent", "spillway-hook")
	if len(c.cfg.Secret) > 0 {
		req.Header.Set(SignatureHeader, Sign(c.cfg.Secret, now, body))
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, ev.Type, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %s: reading the answer: %w", ErrUnavailable, ev.Type, err)
	}
	// Drain a little more so the connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	return resp.StatusCode, answer, nil
}
