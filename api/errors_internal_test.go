package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/apierr"
	"spillway/wire"
)

// Every code in the mapping answers with its one fixed message, however
// the error that chose it is wrapped: no name, path, host, request ID or
// package prefix of the detail reaches the client.
func TestEveryCodeHasOneFixedMessage(t *testing.T) {
	leaks := []string{"secret.bin", "/tmp/", "12345", "example.com", "my-bucket", "REQID",
		"store:", "dirstore:", "s3store:", "spool:", "formdata:"}
	for _, m := range mapping {
		t.Run(string(m.code)+"/"+m.target.Error(), func(t *testing.T) {
			want := apierr.Of(m.code)
			require.Equal(t, m.code, want.Code, "the code has no message")
			require.NotEmpty(t, want.Message)
			for _, err := range []error{
				m.target,
				fmt.Errorf("dirstore: publish %q in /tmp/spillway-12345/uploads: %w", "secret.bin", m.target),
				fmt.Errorf("%w: s3store: put \"secret.bin\": operation error S3: PutObject, https response error "+
					"StatusCode: 403, RequestID: REQID, HostID: 12345, api error: https://my-bucket.example.com/secret.bin", m.target),
			} {
				rec := httptest.NewRecorder()
				apierr.WriteError(apierr.WithRequestID(t.Context(), "req-1"), rec, ErrorFor(err))
				assert.Equal(t, want.Status, rec.Code)
				var got wire.ErrorResponse
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got), rec.Body.String())
				assert.Equal(t, m.code, got.Error.Code)
				assert.Equal(t, want.Message, got.Error.Message)
				for _, leak := range leaks {
					assert.NotContains(t, rec.Body.String(), leak)
				}
				assert.Equal(t, "req-1", got.Error.RequestID)
				assert.Equal(t, "req-1", rec.Header().Get("X-Request-Id"))
			}
		})
	}
}

// The handler's own error values choose their code by themselves: the
// mapping's entry for each agrees with it.
func TestOwnErrorsKeepTheirCode(t *testing.T) {
	for _, m := range mapping {
		if code, ok := apierr.CodeOf(m.target); ok {
			assert.Equal(t, code, m.code, m.target.Error())
			assert.Equal(t, code, ErrorFor(fmt.Errorf("wrapped: %w", m.target)).Code)
		}
	}
}

// An error outside the mapping is 500 internal with its fixed message, and
// every code that has a message is one the handler can answer.
func TestUnknownErrorsAreInternal(t *testing.T) {
	e := ErrorFor(errors.New("dirstore: open /srv/uploads/secret.bin: input/output error"))
	assert.Equal(t, http.StatusInternalServerError, e.Status)
	assert.Equal(t, wire.CodeInternal, e.Code)
	assert.Equal(t, apierr.Of(wire.CodeInternal).Message, e.Message)

	used := map[wire.Code]bool{wire.CodeInternal: true}
	for _, m := range mapping {
		used[m.code] = true
	}
	for _, code := range apierr.Codes() {
		assert.True(t, used[code], "%s has a message but no error maps to it", code)
	}
}
