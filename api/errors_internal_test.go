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
)

// Every code in the mapping answers with its one fixed message, however
// the error that chose it is wrapped: no name, path, host, request ID or
// package prefix of the detail reaches the client.
func TestEveryCodeHasOneFixedMessage(t *testing.T) {
	leaks := []string{"secret.bin", "/tmp/", "12345", "example.com", "my-bucket", "REQID",
		"store:", "dirstore:", "s3store:", "spool:", "formdata:"}
	for _, m := range mapping {
		t.Run(m.code+"/"+m.target.Error(), func(t *testing.T) {
			want, ok := codes[m.code]
			require.True(t, ok, "the code has no message")
			require.NotEmpty(t, want.message)
			for _, err := range []error{
				m.target,
				fmt.Errorf("dirstore: publish %q in /tmp/spillway-12345/uploads: %w", "secret.bin", m.target),
				fmt.Errorf("%w: s3store: put \"secret.bin\": operation error S3: PutObject, https response error "+
					"StatusCode: 403, RequestID: REQID, HostID: 12345, api error: https://my-bucket.example.com/secret.bin", m.target),
			} {
				rec := httptest.NewRecorder()
				WriteError(WithRequestID(t.Context(), "req-1"), rec, err)
				assert.Equal(t, want.status, rec.Code)
				var got struct{ Error Error }
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got), rec.Body.String())
				assert.Equal(t, m.code, got.Error.Code)
				assert.Equal(t, want.message, got.Error.Message)
				for _, leak := range leaks {
					assert.NotContains(t, rec.Body.String(), leak)
				}
				assert.Equal(t, "req-1", got.Error.RequestID)
				assert.Equal(t, "req-1", rec.Header().Get("X-Request-Id"))
			}
		})
	}
}

// An error outside the mapping is 500 internal with its fixed message, and
// every code that has a message is one the handler can answer.
func TestUnknownErrorsAreInternal(t *testing.T) {
	e := ErrorFor(errors.New("dirstore: open /srv/uploads/secret.bin: input/output error"))
	assert.Equal(t, http.StatusInternalServerError, e.Status)
	assert.Equal(t, "internal", e.Code)
	assert.Equal(t, codes["internal"].message, e.Message)

	used := map[string]bool{"internal": true}
	for _, m := range mapping {
		used[m.code] = true
	}
	for code := range codes {
		assert.True(t, used[code], "%s has a message but no error maps to it", code)
	}
}
