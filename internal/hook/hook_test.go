package hook_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/hook"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func TestSignVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"type":"pre-create"}`)
	sig := hook.Sign(secret, now, body)
	require.True(t, strings.HasPrefix(sig, "t=1800000000,v1="), sig)
	require.NoError(t, hook.Verify(secret, sig, body, now.Add(time.Minute), 5*time.Minute))
	assert.ErrorIs(t, hook.Verify(secret, sig, []byte(`{"type":"post-finish"}`), now, 5*time.Minute), hook.ErrBadSignature)
	assert.ErrorIs(t, hook.Verify([]byte("another secret"), sig, body, now, 5*time.Minute), hook.ErrBadSignature)
	assert.ErrorIs(t, hook.Verify(secret, sig, body, now.Add(6*time.Minute), 5*time.Minute), hook.ErrBadSignature, "a replay")
	assert.ErrorIs(t, hook.Verify(secret, "v1=00", body, now, 5*time.Minute), hook.ErrBadSignature)
}

func TestMessage(t *testing.T) {
	assert.Equal(t, "no PDFs on Sunday", hook.Message([]byte(`{"message":"no PDFs on Sunday"}`)))
	assert.Equal(t, "", hook.Message([]byte(`<html>proxy error at 10.0.0.3</html>`)), "not JSON: not shown")
	assert.Equal(t, "a  b", hook.Message([]byte(`{"message":"a\r\nb"}`)))
	long := hook.Message([]byte(`{"message":"` + strings.Repeat("é", 300) + `"}`))
	assert.LessOrEqual(t, len(long), hook.MaxMessage)
	assert.True(t, strings.HasSuffix(long, "é"))
}

// receiver records the deliveries it verified and answers from status.
func receiver(t *testing.T, status func(n int) (int, string)) (*httptest.Server, func() []hook.Event) {
	var (
		mu     sync.Mutex
		events []hook.Event
		n      atomic.Int32
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if !assert.NoError(t, err) {
			return
		}
		assert.NoError(t, hook.Verify(secret, r.Header.Get(hook.SignatureHeader), body, time.Now(), time.Minute))
		var ev hook.Event
		assert.NoError(t, json.Unmarshal(body, &ev))
		assert.Equal(t, ev.Type, r.Header.Get(hook.EventHeader))
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
		code, answer := status(int(n.Add(1)))
		w.WriteHeader(code)
		io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []hook.Event {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(events)
	}
}

func TestPreCreate(t *testing.T) {
	srv, events := receiver(t, func(n int) (int, string) {
		if n == 1 {
			return http.StatusNoContent, ""
		}
		return http.StatusUnprocessableEntity, `{"message":"quota reached"}`
	})
	c := hook.New(hook.Config{URL: srv.URL, Secret: secret})
	ev := hook.Event{RequestID: "r1", Route: "put", Name: "a.txt", Size: 3, User: "u"}
	require.NoError(t, c.PreCreate(t.Context(), ev))
	err := c.PreCreate(t.Context(), ev)
	var ref *hook.Refusal
	require.ErrorAs(t, err, &ref)
	assert.Equal(t, http.StatusUnprocessableEntity, ref.Status)
	assert.Equal(t, "quota reached", ref.Message)
	require.Len(t, events(), 2)
	assert.Equal(t, hook.PreCreate, events()[0].Type)
	assert.Equal(t, "a.txt", events()[0].Name)
	assert.Equal(t, "u", events()[0].User)
}

// closedURL is a loopback URL where nothing listens.
func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	u := "http://" + l.Addr().String() + "/hook"
	require.NoError(t, l.Close())
	return u
}

func TestPreCreateDown(t *testing.T) {
	c := hook.New(hook.Config{URL: closedURL(t), Secret: secret})
	err := c.PreCreate(t.Context(), hook.Event{Name: "a"})
	assert.ErrorIs(t, err, hook.ErrUnavailable)
	assert.NotErrorIs(t, err, hook.ErrRefused)
}

func TestPreCreateSlowTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c := hook.New(hook.Config{URL: srv.URL, Timeout: 50 * time.Millisecond})
	err := c.PreCreate(t.Context(), hook.Event{Name: "a"})
	assert.ErrorIs(t, err, hook.ErrUnavailable)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestPostFinishRetries5xx(t *testing.T) {
	srv, events := receiver(t, func(n int) (int, string) {
		if n < 3 {
			return http.StatusBadGateway, ""
		}
		return http.StatusOK, ""
	})
	c := hook.New(hook.Config{URL: srv.URL, Secret: secret, Backoff: time.Millisecond})
	require.NoError(t, c.PostFinish(t.Context(), hook.Event{Name: "a", SHA256: "ab"}))
	require.Len(t, events(), 3)
	for _, ev := range events() {
		assert.Equal(t, hook.PostFinish, ev.Type)
		assert.Equal(t, "ab", ev.SHA256)
	}
}

func TestPostFinishGivesUp(t *testing.T) {
	srv, events := receiver(t, func(int) (int, string) { return http.StatusServiceUnavailable, "" })
	c := hook.New(hook.Config{URL: srv.URL, Secret: secret, Backoff: time.Millisecond, Attempts: 4})
	err := c.PostFinish(t.Context(), hook.Event{Name: "a"})
	assert.ErrorIs(t, err, hook.ErrUnavailable)
	assert.Len(t, events(), 4)

	// A 4xx is the receiver's decision: not retried.
	srv4, events4 := receiver(t, func(int) (int, string) { return http.StatusBadRequest, "" })
	c = hook.New(hook.Config{URL: srv4.URL, Secret: secret, Backoff: time.Millisecond})
	err = c.PostFinish(t.Context(), hook.Event{Name: "a"})
	require.Error(t, err)
	assert.False(t, errors.Is(err, hook.ErrUnavailable))
	assert.Len(t, events4(), 1)
}

func TestPostFinishBudget(t *testing.T) {
	c := hook.New(hook.Config{URL: closedURL(t), Attempts: 1000, Backoff: 20 * time.Millisecond, Budget: 100 * time.Millisecond})
	start := time.Now()
	err := c.PostFinish(t.Context(), hook.Event{Name: "a"})
	assert.ErrorIs(t, err, hook.ErrUnavailable)
	assert.Less(t, time.Since(start), 2*time.Second, "the budget bounds the attempts")
}

// On Lambda the request's context ends with the invocation: the retries
// end before it, whatever the budget.
func TestPostFinishEndsBeforeTheDeadline(t *testing.T) {
	c := hook.New(hook.Config{URL: closedURL(t), Attempts: 1000, Backoff: 20 * time.Millisecond, Budget: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 700*time.Millisecond)
	defer cancel()
	err := c.PostFinish(ctx, hook.Event{Name: "a"})
	assert.ErrorIs(t, err, hook.ErrUnavailable)
	assert.NoError(t, ctx.Err(), "PostFinish returned after the deadline")

	ctx, cancel = context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, c.PostFinish(ctx, hook.Event{Name: "a"}), hook.ErrUnavailable, "no time left: not sent")
}
