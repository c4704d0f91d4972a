package api

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/spool"
	"spillway/store"
	"spillway/store/dirstore"
	"spillway/wire"
)

// allMethods are the methods tried on every pattern.
var allMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodTrace, "PROPFIND",
}

// newTableHandler is a handler with every route the table can have: the
// directory store writes parts through the handler, and /metrics is served.
func newTableHandler(t *testing.T, token string, metricsPublic bool) *Handler {
	t.Helper()
	cfg := spool.DefaultConfig()
	cfg.Dir = t.TempDir()
	sp, err := spool.New(cfg)
	require.NoError(t, err)
	st, _, err := dirstore.Open(filepath.Join(t.TempDir(), "uploads"), dirstore.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	h := New(Config{
		Spooler: sp, Store: st, Logger: slog.New(slog.DiscardHandler), Token: token,
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, "spillway_up 1\n")
		}),
		MetricsPublic: metricsPublic,
	})
	require.NotNil(t, h.partWriter, "the directory store takes parts through the handler")
	return h
}

// samplePath is a path of the pattern: each wildcard filled in.
func samplePath(p *pattern) string {
	segs := make([]string, len(p.segs))
	for i, s := range p.segs {
		switch {
		case s.rest:
			segs[i] = "x/y.bin"
		case s.param != "":
			segs[i] = "x"
		default:
			segs[i] = s.literal
		}
	}
	return "/" + strings.Join(segs, "/")
}

func serveTable(h *Handler, method, path, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func errorCode(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var e wire.ErrorResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), rec.Body.String())
	return string(e.Error.Code)
}

// TestRouteTable walks the table: every route has an auth rule, the Allow
// header of every pattern lists exactly the methods its routes serve, and
// every other method is a 405 with that header. Without credentials, every
// route answers as its auth rule says, before anything else.
func TestRouteTable(t *testing.T) {
	const token = "t0k"
	for _, metricsPublic := range []bool{false, true} {
		h := newTableHandler(t, token, metricsPublic)
		for _, p := range h.table.patterns {
			t.Run(fmt.Sprintf("%s metrics_public=%v", p.text, metricsPublic), func(t *testing.T) {
				path := samplePath(p)
				for _, rt := range p.routes {
					assert.Contains(t, []authRule{authToken, authPartURL, authFormURL, authPublic}, rt.auth, "%s has no auth rule", rt.pattern)
					assert.NotNil(t, rt.serve)
				}

				var served []string
				for _, m := range allMethods {
					got := h.table.match(m, path)
					require.Same(t, p, got.pattern, "%s %s matched another pattern", m, path)
					if got.route != nil {
						served = append(served, m)
						continue
					}
					rec := serveTable(h, m, path, token)
					assert.Equal(t, http.StatusMethodNotAllowed, rec.Code, "%s %s", m, path)
					assert.Equal(t, "method_not_allowed", errorCode(t, rec))
					assert.Equal(t, p.allow, rec.Header().Get("Allow"), "%s %s", m, path)
				}
				if slices.ContainsFunc(p.routes, func(rt *route) bool { return rt.methods == nil }) {
					assert.Equal(t, allMethods, served, "a route of every method is never a 405")
				} else {
					allow := strings.Split(p.allow, ", ")
					slices.Sort(allow)
					slices.Sort(served)
					assert.Equal(t, allow, served, "Allow lists the methods served, and only those")
				}

				for _, rt := range p.routes {
					methods := rt.methods
					if methods == nil {
						methods = allMethods
					}
					for _, m := range methods {
						rec := serveTable(h, m, path, "")
						switch rt.auth {
						case authPublic:
							assert.NotEqual(t, http.StatusUnauthorized, rec.Code, "%s %s is public", m, path)
						case authToken:
							require.Equal(t, http.StatusUnauthorized, rec.Code, "%s %s needs the token", m, path)
							assert.Equal(t, "unauthorized", errorCode(t, rec))
							assert.Equal(t, `Bearer realm="spillway"`, rec.Header().Get("WWW-Authenticate"))
						case authPartURL, authFormURL:
							require.Equal(t, http.StatusForbidden, rec.Code, "%s %s needs a signature", m, path)
							assert.Equal(t, "bad_signature", errorCode(t, rec))
						}
					}
				}
				// A 405 tells no more than the token allows.
				public := !slices.ContainsFunc(p.routes, func(rt *route) bool { return rt.auth != authPublic })
				for _, m := range allMethods {
					if h.table.match(m, path).route != nil {
						continue
					}
					rec := serveTable(h, m, path, "")
					if public {
						assert.Equal(t, http.StatusMethodNotAllowed, rec.Code, "%s %s", m, path)
					} else {
						assert.Equal(t, http.StatusUnauthorized, rec.Code, "%s %s", m, path)
					}
				}
			})
		}
	}
}

// The table holds the routes the issue lists, and /metrics follows
// Config.MetricsPublic.
func TestRouteTableContents(t *testing.T) {
	h := newTableHandler(t, "t0k", false)
	var got []string
	for _, p := range h.table.patterns {
		for _, rt := range p.routes {
			methods := "*"
			if rt.methods != nil {
				methods = strings.Join(rt.methods, ",")
			}
			got = append(got, methods+" "+rt.pattern+" "+rt.auth.String())
		}
	}
	assert.Equal(t, []string{
		"GET,HEAD / public",
		"GET,HEAD /healthz public",
		"GET,HEAD /metrics token",
		"GET,HEAD /files token",
		"POST /files token",
		"GET,HEAD /files/{name...} token",
		"PUT /files/{name...} token",
		"DELETE /files/{name...} token",
		"POST /uploads token",
		"GET,HEAD /uploads/{id} token",
		"DELETE /uploads/{id} token",
		"GET,HEAD /uploads/{id}/parts token",
		"POST /uploads/{id}/complete token",
		"PUT /uploads/{id}/parts/{n} part URL",
		"GET,HEAD /s3/params token",
		"POST /s3/objects form URL",
		"GET,HEAD /s3/objects/{name...} token",
		"POST /s3/multipart token",
		"GET,HEAD /s3/multipart/{id} token",
		"DELETE /s3/multipart/{id} token",
		"POST /s3/multipart/{id}/complete token",
		"GET,HEAD /s3/multipart/{id}/{n} token",
		"POST /tus/ token",
		"OPTIONS /tus/ public",
		"HEAD /tus/{id} token",
		"PATCH /tus/{id} token",
		"DELETE /tus/{id} token",
		"OPTIONS /tus/{id} public",
		"* /uploads/{rest...} token",
	}, got)

	public := newTableHandler(t, "t0k", true)
	m := public.table.match(http.MethodGet, "/metrics")
	require.NotNil(t, m.route)
	assert.Equal(t, authPublic, m.route.auth)

	// Only uploads take a slot.
	var uploads []string
	for _, p := range h.table.patterns {
		for _, rt := range p.routes {
			if rt.upload {
				uploads = append(uploads, strings.Join(rt.methods, ",")+" "+rt.pattern)
			}
		}
	}
	assert.Equal(t, []string{"POST /files", "PUT /files/{name...}", "POST /uploads/{id}/complete", "PUT /uploads/{id}/parts/{n}", "POST /s3/objects", "POST /s3/multipart/{id}/complete", "POST /tus/", "PATCH /tus/{id}"}, uploads)
}

// The matcher works on the escaped path and decodes a name once.
func TestMatch(t *testing.T) {
	h := newTableHandler(t, "", false)
	for _, tc := range []struct {
		method, path, pattern string
		values                []string
	}{
		{http.MethodGet, "/", "/", nil},
		{http.MethodGet, "//", "", nil},
		{http.MethodGet, "", "", nil},
		{http.MethodGet, "/healthz/", "", nil},
		{http.MethodGet, "/files", "/files", nil},
		{http.MethodGet, "/files/", "/files", nil},
		{http.MethodDelete, "/files/", "/files", nil},
		{http.MethodPut, "/files/", "/files/{name...}", []string{""}},
		{http.MethodPut, "/files/a%2Fb/c%20d", "/files/{name...}", []string{"a/b/c d"}},
		{http.MethodPut, "/files/..%2Fx", "/files/{name...}", []string{"../x"}},
		{http.MethodGet, "/uploads", "/uploads", nil},
		{http.MethodGet, "/uploads/", "/uploads/{id}", []string{""}},
		{http.MethodGet, "/uploads/a%2Fb", "/uploads/{id}", []string{"a%2Fb"}},
		{http.MethodGet, "/uploads/a/parts", "/uploads/{id}/parts", []string{"a"}},
		{http.MethodPut, "/uploads/a/parts/3", "/uploads/{id}/parts/{n}", []string{"a", "3"}},
		{http.MethodPut, "/uploads//parts/", "/uploads/{id}/parts/{n}", []string{"", ""}},
		{http.MethodPost, "/uploads/a/complete", "/uploads/{id}/complete", []string{"a"}},
		{http.MethodGet, "/uploads/a/", "/uploads/{rest...}", []string{"a/"}},
		{http.MethodPut, "/uploads/a/parts/1/2", "/uploads/{rest...}", []string{"a/parts/1/2"}},
		{http.MethodGet, "/metricsx", "", nil},
	} {
		m := h.table.match(tc.method, tc.path)
		assert.Equal(t, tc.pattern, m.label(), "%s %s", tc.method, tc.path)
		assert.Equal(t, tc.values, m.values, "%s %s", tc.method, tc.path)
		assert.NoError(t, m.err)
	}
	m := h.table.match(http.MethodGet, "/files/a%zz")
	assert.Equal(t, "/files/{name...}", m.label())
	assert.ErrorIs(t, m.err, store.ErrInvalidName)
}

// A malformed table fails at once, in any test that makes a handler.
func TestNewTableRefusesMalformedRoutes(t *testing.T) {
	serve := func(http.ResponseWriter, *http.Request, *exchange) error { return nil }
	for name, routes := range map[string][]route{
		"no auth rule":     {{pattern: "/a", methods: getHead, serve: serve}},
		"a method twice":   {{pattern: "/a", methods: getHead, auth: authToken, serve: serve}, {pattern: "/a", methods: []string{http.MethodHead}, auth: authToken, serve: serve}},
		"every method too": {{pattern: "/a", methods: put, auth: authToken, serve: serve}, {pattern: "/a", auth: authToken, serve: serve}},
		"relative":         {{pattern: "a", methods: getHead, auth: authToken, serve: serve}},
		"after the rest":   {{pattern: "/a/{x...}/b", methods: getHead, auth: authToken, serve: serve}},
		"open wildcard":    {{pattern: "/a/{x", methods: getHead, auth: authToken, serve: serve}},
	} {
		assert.Panics(t, func() { newTable(routes) }, name)
	}
}
