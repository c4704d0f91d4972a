package api_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/apierr"
	"spillway/internal/uploadtest"
	"spillway/spool"
)

// newRouteServer serves a handler over the directory store with cfg's
// token, metrics and observer.
func newRouteServer(t *testing.T, cfg api.Config) (*upServer, *api.Handler) {
	t.Helper()
	s := &server{spoolDir: t.TempDir(), logs: &uploadtest.SyncBuffer{}, served: make(chan int, 1024)}
	scfg := spool.DefaultConfig()
	scfg.Dir = s.spoolDir
	var err error
	s.spooler, err = spool.New(scfg)
	require.NoError(t, err)
	st, uploads := dirBackend.open(t)
	cfg.Spooler, cfg.Store, cfg.UploadSecret = s.spooler, st, testSecret
	cfg.Logger = slog.New(slog.NewJSONHandler(s.logs, nil))
	h := api.New(cfg)
	s.start(t, h)
	return &upServer{server: s, token: cfg.Token, uploads: uploads}, h
}

// exposition stands in for the Prometheus handler: the route's rules are
// the API's, whatever the handler serves.
var exposition = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	io.WriteString(w, "spillway_up 1\n")
})

// GET /metrics goes through the API's routing: the token rule unless
// public, 405 with Allow for other methods, and no route without a
// metrics handler.
func TestMetricsRoute(t *testing.T) {
	t.Run("token", func(t *testing.T) {
		obs := &recordingObserver{}
		s, _ := newRouteServer(t, api.Config{Token: "t0k", Metrics: exposition, Observer: obs})
		for _, auth := range []string{"", "Bearer wrong"} {
			req := s.request(t, http.MethodGet, "/metrics", nil, 0)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, body := s.finish(t, req)
			requireError(t, resp, body, http.StatusUnauthorized, "unauthorized")
			assert.Equal(t, `Bearer realm="spillway"`, resp.Header.Get("WWW-Authenticate"))
		}
		resp, body := s.call(t, http.MethodGet, "/metrics", nil, 0)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		assert.Equal(t, "spillway_up 1\n", string(body))
		assert.NotEmpty(t, resp.Header.Get("X-Request-Id"))
		resp, body = s.call(t, http.MethodHead, "/metrics", nil, 0)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Empty(t, body)

		resp, body = s.call(t, http.MethodPost, "/metrics", nil, 0)
		requireError(t, resp, body, http.StatusMethodNotAllowed, "method_not_allowed")
		assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
		resp, body = s.finish(t, s.request(t, http.MethodPost, "/metrics", nil, 0))
		requireError(t, resp, body, http.StatusUnauthorized, "unauthorized")

		obs.mu.Lock()
		defer obs.mu.Unlock()
		require.Len(t, obs.outcomes, 6)
		for _, o := range obs.outcomes {
			assert.Equal(t, "/metrics", o.Route)
			assert.False(t, o.Upload)
		}
	})

	t.Run("public", func(t *testing.T) {
		s, _ := newRouteServer(t, api.Config{Token: "t0k", Metrics: exposition, MetricsPublic: true})
		resp, body := s.finish(t, s.request(t, http.MethodGet, "/metrics", nil, 0))
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		assert.Equal(t, "spillway_up 1\n", string(body))
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
			resp, body = s.finish(t, s.request(t, m, "/metrics", nil, 0))
			requireError(t, resp, body, http.StatusMethodNotAllowed, "method_not_allowed")
			assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
		}
		// Public is for /metrics only.
		resp, body = s.finish(t, s.request(t, http.MethodGet, "/files", nil, 0))
		requireError(t, resp, body, http.StatusUnauthorized, "unauthorized")
	})

	t.Run("absent", func(t *testing.T) {
		s, _ := newRouteServer(t, api.Config{Token: "t0k", MetricsPublic: true})
		resp, body := s.call(t, http.MethodGet, "/metrics", nil, 0)
		requireError(t, resp, body, http.StatusNotFound, "not_found")
		resp, body = s.finish(t, s.request(t, http.MethodGet, "/metrics", nil, 0))
		requireError(t, resp, body, http.StatusUnauthorized, "unauthorized")
	})
}

// The observer gets each request's route pattern, from the same table that
// routed it, also for a request an entrypoint refuses before the handler.
func TestObserverSeesTheRoute(t *testing.T) {
	obs := &recordingObserver{}
	s, h := newRouteServer(t, api.Config{Observer: obs})
	f := uploadtest.File{Name: "dir/a.bin", Seed: 1, Size: 10}
	resp, body := s.call(t, http.MethodPut, "/files/"+f.Name, f.Reader(), f.Size)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	up := s.create(t, uploadtest.File{Name: "b.bin", Seed: 2, Size: 10}, "")
	p := s.sendPart(t, up.Parts[0], uploadtest.File{Name: "b.bin", Seed: 2, Size: 10})
	resp, body = s.complete(t, up.ID, p)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/files/"},
		{http.MethodPatch, "/files/dir/a.bin"},
		{http.MethodGet, "/uploads/" + up.ID + "/x"},
		{http.MethodGet, "/nope"},
		{http.MethodGet, "/healthz"},
	} {
		s.call(t, r.method, r.path, nil, 0)
	}
	rec := httptest.NewRecorder()
	h.Refuse(rec, httptest.NewRequest(http.MethodPut, "/files/c.bin", nil), apierr.ErrUnavailable)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)

	type label struct {
		Route  string
		Upload bool
		Status int
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	var got []label
	for _, o := range obs.outcomes {
		got = append(got, label{o.Route, o.Upload, o.Status})
	}
	assert.Equal(t, []label{
		{"/files/{name...}", true, http.StatusCreated},
		{"/uploads", false, http.StatusCreated},
		{"/uploads/{id}/parts/{n}", true, http.StatusOK},
		{"/uploads/{id}/complete", true, http.StatusCreated},
		{"/files", false, http.StatusOK},
		{"/files/{name...}", false, http.StatusMethodNotAllowed},
		{"/uploads/{rest...}", false, http.StatusNotFound},
		{"", false, http.StatusNotFound},
		{"/healthz", false, http.StatusOK},
		{"/files/{name...}", true, http.StatusServiceUnavailable},
	}, got)
}

// Routes match whole: what follows an upload's ID or part number is no
// route, rather than the upload itself or a part URL to verify.
func TestRoutesAreExact(t *testing.T) {
	s, _ := newRouteServer(t, api.Config{Token: "t0k"})
	f := uploadtest.File{Name: "exact.bin", Seed: 3, Size: 10}
	up := s.create(t, f, "")
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/uploads/" + up.ID + "/"},
		{http.MethodDelete, "/uploads/" + up.ID + "/"},
		{http.MethodGet, "/uploads/" + up.ID + "/parts/1/2"},
		{http.MethodPut, "/uploads/" + up.ID + "/parts/1/2"},
		{http.MethodPost, "/uploads/" + up.ID + "/complete/"},
	} {
		resp, body := s.call(t, r.method, r.path, strings.NewReader("x"), 1)
		requireError(t, resp, body, http.StatusNotFound, "not_found")
		resp, body = s.finish(t, s.request(t, r.method, r.path, strings.NewReader("x"), 1))
		requireError(t, resp, body, http.StatusUnauthorized, "unauthorized")
	}
	resp, body := s.call(t, http.MethodGet, "/uploads/"+up.ID, nil, 0)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.Len(t, s.uploads(t), 1, "the upload is still there")
}
