package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/store"
	"spillway/wire"
)

// A full spool directory answers 507 with the fixed message: the client
// learns that there is no room, not where the server spools. The path is
// in the log line under the request ID the client sees.
func TestNoSpaceHidesTheSpoolDir(t *testing.T) {
	s := newServer(t, options{})
	req := s.request(t, http.MethodPut, "/files/huge.bin", &trackingReader{r: strings.NewReader("")}, 1<<60)
	req.Header.Set("Expect", "100-continue")
	resp, body := s.do(t, req)
	requireError(t, resp, body, http.StatusInsufficientStorage, "insufficient_storage")
	s.waitServed(t)
	var e wire.ErrorResponse
	require.NoError(t, json.Unmarshal(body, &e))
	assert.Equal(t, api.ErrorFor(spool.ErrNoSpace).Message, e.Error.Message)
	assert.NotContains(t, string(body), s.spoolDir)

	line := s.logLine(t, e.Error.RequestID)
	assert.Equal(t, "ERROR", line["level"])
	assert.Equal(t, "insufficient_storage", line["code"])
	assert.Contains(t, line["error"], s.spoolDir, "the detail is logged")
}

// Every refusal logs its detail, a client's mistakes at info level; the
// response has only the fixed message, and too_large the limit as a field.
func TestRefusalsLogTheirDetail(t *testing.T) {
	const limit = 1000
	s := newServer(t, options{spool: func(c *spool.Config) { c.MaxSize = limit }})
	taken := uploadtest.File{Name: "dir/taken.bin", Size: 10}
	resp, body := s.send(t, uploadtest.Case{Mode: uploadtest.RawLength, Files: []uploadtest.File{taken}})
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	s.waitServed(t)

	for _, tc := range []struct {
		name, path string
		size       int64
		status     int
		code       string
		target     error
		detail     string // in the log, not in the response
	}{
		{"too large", "/files/big.bin", limit + 1, http.StatusRequestEntityTooLarge, "too_large", spool.ErrTooLarge, "1001"},
		{"exists", "/files/dir/taken.bin", 5, http.StatusConflict, "exists", store.ErrExists, "dir/taken.bin"},
		{"invalid name", "/files/dir/..%2Fx.bin", 5, http.StatusBadRequest, "invalid_name", store.ErrInvalidName, "x.bin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.do(t, s.request(t, http.MethodPut, tc.path, strings.NewReader(strings.Repeat("x", int(tc.size))), tc.size))
			requireError(t, resp, body, tc.status, tc.code)
			s.waitServed(t)
			var e wire.ErrorResponse
			require.NoError(t, json.Unmarshal(body, &e))
			assert.Equal(t, api.ErrorFor(tc.target).Message, e.Error.Message)
			assert.NotContains(t, e.Error.Message, tc.detail)
			if tc.code == "too_large" {
				assert.EqualValues(t, limit, e.Error.Limit)
			} else {
				assert.Zero(t, e.Error.Limit)
			}

			line := s.logLine(t, e.Error.RequestID)
			assert.Equal(t, "INFO", line["level"])
			assert.Equal(t, tc.code, line["code"])
			assert.Contains(t, line["error"], tc.detail)
		})
	}
}
