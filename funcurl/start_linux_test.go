package funcurl

import (
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
)

// TestStartRIEWaitsForTheRuntimeAPI: an emulator whose runtime API port
// another process took after StartRIE chose it exits, after its invoke API
// answered. StartRIE sees that the runtime API's socket is not the
// emulator's and starts one on new ports, instead of returning an emulator
// that fails the first invocation.
func TestStartRIEWaitsForTheRuntimeAPI(t *testing.T) {
	fake := testservers.Build(t, testservers.Program{Name: "fakerie", Pkg: "./testdata/fakerie"})
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	var chosen int
	out := &uploadtest.SyncBuffer{}
	r, err := StartRIE(t.Context(), RIEConfig{
		Path:      fake,
		Bootstrap: "unused",
		Output:    out,
		choosePorts: func(n int) ([]string, error) {
			chosen++
			ports, err := freePorts(n)
			if err == nil && chosen == 1 {
				ports[1] = taken.Addr().String()
			}
			return ports, err
		},
	})
	require.NoError(t, err)
	defer r.Close()
	assert.Equal(t, 2, chosen, "pairs of ports tried")
	assert.Contains(t, out.String(), "runtime API failed to listen")
	payload, err := r.Invoke(t.Context(), Invocation{Event: strings.NewReader("{}"), Size: 2, RequestID: "r1"})
	require.NoError(t, err)
	assert.Equal(t, "null", string(payload))
}
