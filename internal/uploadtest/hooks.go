package uploadtest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"spillway/internal/hook"
)

// HookSecret is the key the tests' hook receivers verify signatures with.
const HookSecret = "hook-secret-for-the-tests-0123456789"

// HookReceiver is a user's hook endpoint on loopback: it verifies each
// delivery's signature and records the events, refuses the pre-create of
// any name that begins with "deny" with 403 and a JSON message, and
// answers post-finish with PostFinishStatus (200 when zero).
type HookReceiver struct {
	URL string
	srv *httptest.Server

	mu               sync.Mutex
	events           []hook.Event
	postFinishStatus int
}

// RefusalMessage is what the receiver refuses with.
const RefusalMessage = "names that begin with deny are not taken here"

// NewHookReceiver starts a receiver, closed when the test ends.
func NewHookReceiver(t *testing.T) *HookReceiver {
	hr := &HookReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if !assert.NoError(t, err) {
			return
		}
		if !assert.NoError(t, hook.Verify([]byte(HookSecret), r.Header.Get(hook.SignatureHeader), body, time.Now(), time.Minute),
			"a delivery with a bad signature") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev hook.Event
		if !assert.NoError(t, json.Unmarshal(body, &ev)) {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		hr.mu.Lock()
		hr.events = append(hr.events, ev)
		status := hr.postFinishStatus
		hr.mu.Unlock()
		switch {
		case ev.Type == hook.PreCreate && strings.HasPrefix(path.Base(ev.Name), "deny"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(map[string]string{"message": RefusalMessage})
		case ev.Type == hook.PostFinish && status != 0:
			w.WriteHeader(status)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(srv.Close)
	hr.URL, hr.srv = srv.URL+"/hook", srv
	return hr
}

// SetPostFinishStatus makes the receiver answer post-finish with status.
func (hr *HookReceiver) SetPostFinishStatus(status int) {
	hr.mu.Lock()
	defer hr.mu.Unlock()
	hr.postFinishStatus = status
}

// Events returns the events received so far and forgets them.
func (hr *HookReceiver) Events() []hook.Event {
	hr.mu.Lock()
	defer hr.mu.Unlock()
	evs := slices.Clone(hr.events)
	hr.events = nil
	return evs
}

// Close takes the receiver down: its URL refuses connections from then on.
func (hr *HookReceiver) Close() { hr.srv.Close() }
