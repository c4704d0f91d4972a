package api_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/internal/apitest"
	"spillway/spool"
)

func TestHealthzReportsTheVersion(t *testing.T) {
	for _, tc := range []struct {
		name              string
		version, revision string
		want              string
	}{
		{"stamped", "v0.0.0-20261206010203-0123456789ab", "0123456789abcdef0123456789abcdef01234567",
			`{"status":"ok","version":"v0.0.0-20261206010203-0123456789ab","revision":"0123456789abcdef0123456789abcdef01234567"}`},
		{"go run", "(devel)", "", `{"status":"ok","version":"(devel)"}`},
		{"not given", "", "", `{"status":"ok"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(apitest.New(t, spool.DefaultConfig(), api.Config{Token: "secret",
				Version: tc.version, Revision: tc.revision}))
			t.Cleanup(srv.Close)

			// No token: /healthz is open, version and all.
			resp, err := http.Get(srv.URL + "/healthz")
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.JSONEq(t, tc.want, string(body))
		})
	}
}
