// Package apitest builds the API handler over a real spooler and a real
// directory store, each in a temporary directory of the test's, for the
// tests and benchmarks of the API and of the adapters around it.
package apitest

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/spool"
	"spillway/store/dirstore"
)

// Handler is the API handler with what it stores into.
type Handler struct {
	*api.Handler
	Spooler  *spool.Spooler
	Dir      string // the directory store's
	SpoolDir string
}

// New builds the handler of cfg with a spooler of sc and a directory
// store, whose directories it makes; it sets cfg's Spooler and Store and
// sc's Dir. The store is closed when the test ends.
func New(t testing.TB, sc spool.Config, cfg api.Config) *Handler {
	t.Helper()
	h := &Handler{Dir: filepath.Join(t.TempDir(), "uploads"), SpoolDir: t.TempDir()}
	sc.Dir = h.SpoolDir
	var err error
	h.Spooler, err = spool.New(sc)
	require.NoError(t, err)
	st, _, err := dirstore.Open(h.Dir, dirstore.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	cfg.Spooler, cfg.Store = h.Spooler, st
	h.Handler = api.New(cfg)
	return h
}
