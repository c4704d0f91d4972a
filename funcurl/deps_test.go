package funcurl_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The emulator and the Lambda adapter answer with the API's error
// catalogue, but link neither the API's handler, nor a store, nor the
// page: they are small programs' parts.
func TestLinksNoServerPackages(t *testing.T) {
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.CommandContext(t.Context(), goTool, "list", "-deps", "spillway/funcurl", "spillway/lambdahttp").Output()
	require.NoError(t, err)
	deps := strings.Fields(string(out))
	assert.Contains(t, deps, "spillway/apierr")
	for _, dep := range deps {
		for _, banned := range []string{"spillway/api", "spillway/store", "spillway/web"} {
			assert.False(t, dep == banned || strings.HasPrefix(dep, banned+"/"), "links %s", dep)
		}
	}
}
