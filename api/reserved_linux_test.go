package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
	"spillway/store"
	"spillway/store/dirstore"
	"spillway/wire"
)

// The parts of an upload on the directory store go into the space its
// creation reserved: a 12 MiB upload on a 13 MiB disk, created, takes each
// of its parts and completes, though the disk has 1 MiB free the while.
func TestPartsGoIntoReservedSpace(t *testing.T) {
	small := testservers.MountTmpfs(t, 13<<20)
	b := backend{name: "tmpfs", open: func(t *testing.T) (store.Store, func(*testing.T) []string) {
		st, _, err := dirstore.Open(filepath.Join(small, "uploads"), dirstore.Options{Fsync: true})
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		return st, func(*testing.T) []string { return nil }
	}}
	s := newUploadServer(t, b, upOptions{})
	f := uploadtest.File{Name: "big.bin", Seed: 5, Size: 12 << 20}
	up := s.createReq(t, wire.CreateUploadRequest{Name: f.Name, Size: f.Size, PartSize: store.MinPartSize})
	require.Len(t, up.Parts, 3)
	var parts []wire.Part
	for _, pu := range up.Parts {
		resp, body := s.putData(t, pu, f.Bytes()[int64(pu.Number-1)*store.MinPartSize:][:pu.Size])
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var p wire.Part
		require.NoError(t, json.Unmarshal(body, &p))
		parts = append(parts, p)
	}
	resp, body := s.complete(t, up.ID, parts...)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	got, err := os.ReadFile(filepath.Join(small, "uploads", f.Name))
	require.NoError(t, err)
	assert.Equal(t, f.Bytes(), got)
}

// A tus upload on the directory store holds its length from its creation,
// or from the PATCH that declares a deferred one: on a 13 MiB disk, a
// second 8 MiB upload is refused at creation, and so is the declaration of
// a deferred 8 MiB beside the first, with nothing of its chunk kept.
func TestTusUploadsHoldTheirSpace(t *testing.T) {
	small := testservers.MountTmpfs(t, 13<<20)
	s := newServer(t, options{wrapStore: func(store.Store) store.Store {
		st, _, err := dirstore.Open(filepath.Join(small, "uploads"), dirstore.Options{Fsync: true})
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		return st
	}})
	first := s.tusCreate(t, "first.bin", 8<<20)

	req := s.request(t, http.MethodPost, "/tus/", nil, 0)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", strconv.Itoa(8<<20))
	req.Header.Set("Upload-Metadata", tusMeta("second.bin"))
	resp, body := s.do(t, req)
	requireError(t, resp, body, http.StatusInsufficientStorage, "insufficient_storage")
	s.waitServed(t)

	deferred := s.tusCreate(t, "deferred.bin", -1)
	resp, body = s.tusPatch(t, deferred, 0, []byte("abc"), "Upload-Length", strconv.Itoa(8<<20))
	requireError(t, resp, body, http.StatusInsufficientStorage, "insufficient_storage")
	assert.Equal(t, int64(0), s.tusOffset(t, deferred))

	// The first upload's bytes all go into its reservation.
	data := bytes.Repeat([]byte("x"), 8<<20)
	resp, body = s.tusPatch(t, first, 0, data)
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	got, err := os.ReadFile(filepath.Join(small, "uploads", "first.bin"))
	require.NoError(t, err)
	assert.Equal(t, data, got)
}
