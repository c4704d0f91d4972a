package testservers

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FunctionParts builds the real function, finds the pinned Runtime
// Interface Emulator, starts a real S3 gateway, and points the test's
// environment at the gateway: the Function URL emulator passes its
// environment on to the function. It skips t in -short mode.
func FunctionParts(t *testing.T) (bootstrap, rie string, gw *S3) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the function and runs the emulator and versitygw")
	}
	bootstrap = Build(t, Function)
	rie = Tool(t, RIE)
	gw = StartS3(t)
	for _, kv := range gw.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return bootstrap, rie, gw
}

var riePidRE = regexp.MustCompile(`msg="function URL emulator started" .* rie_pid=(\d+)`)

// RIEPid is the process ID of the Runtime Interface Emulator that the
// Function URL emulator's start-up line in log names.
func RIEPid(t testing.TB, log string) int {
	t.Helper()
	m := riePidRE.FindStringSubmatch(log)
	require.NotNil(t, m, "no start-up line of the emulator in:\n%s", log)
	pid, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	return pid
}
