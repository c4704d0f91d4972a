package main

import (
	"debug/buildinfo"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLinksNoPrometheus reads the module list of the built function, what
// `go version -m bootstrap` prints. The function reports its metrics as EMF
// lines; the Prometheus client, and protobuf under it, would only make the
// binary larger and run their package init at every cold start.
func TestLinksNoPrometheus(t *testing.T) {
	info, err := buildinfo.ReadFile(buildBootstrap(t))
	require.NoError(t, err)
	require.NotEmpty(t, info.Deps, "the binary carries no module list")
	for _, dep := range info.Deps {
		for _, banned := range []string{"github.com/prometheus/", "google.golang.org/protobuf"} {
			assert.False(t, strings.HasPrefix(dep.Path, banned), "the function links %s %s", dep.Path, dep.Version)
		}
	}
}
