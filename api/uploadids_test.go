package api_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/store"
)

// idRecorder passes every call on to the fake and records the upload IDs
// that reached it.
type idRecorder struct {
	store.Store
	store.Multipart
	store.PartWriter

	mu  sync.Mutex
	ids []string
}

func (r *idRecorder) Capabilities() store.Caps {
	return store.Caps{Multipart: r, PartWriter: r}
}

func (r *idRecorder) saw(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, id)
}

func (r *idRecorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...)
}

func (r *idRecorder) Upload(ctx context.Context, id string) (store.Upload, error) {
	r.saw(id)
	return r.Multipart.Upload(ctx, id)
}

func (r *idRecorder) ListParts(ctx context.Context, id string) ([]store.Part, error) {
	r.saw(id)
	return r.Multipart.ListParts(ctx, id)
}

func (r *idRecorder) Complete(ctx context.Context, id string, parts []store.Part) (store.Completed, error) {
	r.saw(id)
	return r.Multipart.Complete(ctx, id, parts)
}

func (r *idRecorder) Abort(ctx context.Context, id string) error {
	r.saw(id)
	return r.Multipart.Abort(ctx, id)
}

// An ID that no store could have issued is refused by the handler, with
// the same 404 as an unknown one, and never reaches the store: the handler
// and the stores check IDs with one rule.
func TestMalformedUploadIDsNeverReachTheStore(t *testing.T) {
	rec := &idRecorder{}
	s := newUploadServer(t, fakeBackend, upOptions{wrap: func(st store.Store) store.Store {
		caps := st.Capabilities()
		rec.Store, rec.Multipart, rec.PartWriter = st, caps.Multipart, caps.PartWriter
		return rec
	}})
	up := s.create(t, uploadtest.File{Name: "real.bin", Size: 10}, "")
	require.True(t, store.ValidUploadID(up.ID), up.ID)

	// Each is URL-safe, so none is refused for its characters alone: what
	// gives them away is that NewUploadID never returns them.
	malformed := []string{
		"up-1", "abc", "a.b", "a_b", "x~y", "...",
		strings.ToLower(up.ID), up.ID + "A", up.ID[1:], strings.Repeat("A", 512),
		strings.Repeat("A", len(up.ID)-1) + "1", strings.Repeat("A", len(up.ID)-1) + "-",
	}
	for _, id := range malformed {
		require.False(t, store.ValidUploadID(id), id)
		for _, r := range []struct{ method, path, body string }{
			{http.MethodGet, "/uploads/" + id, ""},
			{http.MethodHead, "/uploads/" + id, ""},
			{http.MethodDelete, "/uploads/" + id, ""},
			{http.MethodGet, "/uploads/" + id + "/parts", ""},
			{http.MethodPost, "/uploads/" + id + "/complete", `{"parts":[]}`},
		} {
			resp, body := s.call(t, r.method, r.path, strings.NewReader(r.body), int64(len(r.body)))
			if r.method == http.MethodHead {
				assert.Equal(t, http.StatusNotFound, resp.StatusCode, "%s %s", r.method, r.path)
				continue
			}
			requireError(t, resp, body, http.StatusNotFound, "upload_not_found")
		}
		// A part URL signed with the server's key, for an ID it never issued.
		resp, body := s.finish(t, s.request(t, http.MethodPut, forge("", id, 1, time.Now().Add(time.Hour).Unix()), strings.NewReader("x"), 1))
		requireError(t, resp, body, http.StatusNotFound, "upload_not_found")
	}
	assert.Empty(t, rec.seen(), "malformed IDs reached the store")

	// The real upload is still there, and its ID does reach the store.
	resp, body := s.call(t, http.MethodGet, "/uploads/"+up.ID, nil, 0)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.Contains(t, rec.seen(), up.ID)
}
