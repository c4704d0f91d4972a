package testservers_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
)

func TestNodeModulesRefusesRanges(t *testing.T) {
	for _, spec := range []string{"tus-js-client", "tus-js-client@^4.3.1", "@uppy/core", "@uppy/core@~6"} {
		_, err := testservers.InstallNodeModules(spec)
		assert.ErrorContains(t, err, "exact version", spec)
	}
}

func TestNodeModulesInstallsOnce(t *testing.T) {
	node := testservers.Node(t)
	dir := testservers.NodeModules(t, "tus-js-client@4.3.1")
	again := testservers.NodeModules(t, "tus-js-client@4.3.1")
	assert.Equal(t, dir, again)
	cmd := exec.Command(node, "-e", `console.log(require("tus-js-client/package.json").version)`)
	cmd.Dir = dir
	out, err := cmd.Output()
	require.NoError(t, err)
	assert.Equal(t, "4.3.1\n", string(out))
	assert.FileExists(t, filepath.Join(dir, "package.json"))
}
