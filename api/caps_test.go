package api_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/store"
)

// countingPuts counts the files published through it. It embeds only the
// Store interface, as a wrapper written for the core methods would.
type countingPuts struct {
	store.Store
	files atomic.Int64
}

func (c *countingPuts) Put(ctx context.Context, files []store.File) error {
	c.files.Add(int64(len(files)))
	return c.Store.Put(ctx, files)
}

// A wrapper that knows nothing of the optional features keeps them: the
// handler asks the store for its capabilities rather than probing its type.
func TestWrappedStoreKeepsItsCapabilities(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		wrapped := &countingPuts{}
		s := newUploadServer(t, b, upOptions{wrap: func(st store.Store) store.Store {
			wrapped.Store = st
			return wrapped
		}})
		f := uploadtest.File{Name: "parts.bin", Seed: 1, Size: 100}
		up := s.create(t, f, f.SHA256())
		p := s.sendPart(t, up.Parts[0], f)
		resp, body := s.complete(t, up.ID, p)
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))

		raw := uploadtest.File{Name: "raw.bin", Seed: 2, Size: 10}
		resp, body = s.call(t, http.MethodPut, "/files/raw.bin", raw.Reader(), raw.Size)
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
		assert.Equal(t, int64(1), wrapped.files.Load(), "the wrapper's own Put is used")
	})
}
