package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/apierr"
	"spillway/internal/apitest"
	"spillway/spool"
	"spillway/wire"
)

func newObservedHandler(t *testing.T) (*api.Handler, *recordingObserver, *bytes.Buffer) {
	t.Helper()
	obs, logs := &recordingObserver{}, &bytes.Buffer{}
	h := apitest.New(t, spool.DefaultConfig(), api.Config{Observer: obs, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	return h.Handler, obs, logs
}

func logLine(t *testing.T, logs *bytes.Buffer) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(logs.Bytes(), &m), logs.String())
	return m
}

// TestRefuse: a request an entrypoint refuses for the handler is answered,
// logged and counted as the handler's own refusals are, with a fixed
// message for a 5xx and the detail in the log.
func TestRefuse(t *testing.T) {
	h, obs, logs := newObservedHandler(t)
	rec := httptest.NewRecorder()
	ctx := apierr.WithRequestID(context.Background(), "req-1")
	r := httptest.NewRequestWithContext(ctx, http.MethodPut, "/files/x", nil)
	h.Refuse(rec, r, fmt.Errorf("%w: no requestContext", apierr.ErrBadEvent))

	require.Equal(t, http.StatusInternalServerError, rec.Code)
	assert.Equal(t, "req-1", rec.Header().Get("X-Request-Id"))
	var body wire.ErrorResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	assert.Equal(t, wire.Error{Code: "bad_event", Message: api.ErrorFor(apierr.ErrBadEvent).Message, RequestID: "req-1"}, body.Error)

	l := logLine(t, logs)
	assert.Equal(t, "ERROR", l["level"])
	assert.Equal(t, "req-1", l["request_id"])
	assert.Equal(t, "bad_event", l["code"])
	assert.Equal(t, "PUT", l["method"])
	assert.Equal(t, "/files/x", l["path"])
	assert.Contains(t, l["error"], "no requestContext")

	require.Len(t, obs.outcomes, 1)
	o := obs.outcomes[0]
	assert.Equal(t, http.StatusInternalServerError, o.Status)
	assert.Equal(t, wire.CodeBadEvent, o.Code)
	assert.True(t, o.Upload)
}

// refusingWriter is a buffering transport that cannot carry any body.
type refusingWriter struct{ *httptest.ResponseRecorder }

func (w refusingWriter) Write([]byte) (int, error) {
	return 0, fmt.Errorf("%w: over the cap", apierr.ErrResponseTooLarge)
}

// TestTransportRefusesResponse: when the ResponseWriter refuses the body as
// too large, the log line and the outcome say what the client gets instead.
func TestTransportRefusesResponse(t *testing.T) {
	h, obs, logs := newObservedHandler(t)
	h.ServeHTTP(refusingWriter{httptest.NewRecorder()}, httptest.NewRequest(http.MethodGet, "/files", nil))

	l := logLine(t, logs)
	assert.Equal(t, "ERROR", l["level"])
	assert.EqualValues(t, http.StatusBadGateway, l["status"])
	assert.Equal(t, "response_too_large", l["code"])
	assert.Contains(t, l["error"], "over the cap")
	require.Len(t, obs.outcomes, 1)
	assert.Equal(t, http.StatusBadGateway, obs.outcomes[0].Status)
	assert.Equal(t, wire.CodeResponseTooLarge, obs.outcomes[0].Code)
}
