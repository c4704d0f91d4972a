package dirstore

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"spillway/store"
)

// TestUnnamedFilesTakeTheirModeAtOpen: where the umask at Open leaves the
// file mode whole, copied files are made with it and not chmodded; where
// it would take bits away, they are chmodded to it. Either way the stored
// file has the mode.
func TestUnnamedFilesTakeTheirModeAtOpen(t *testing.T) {
	if !defaultSys().unnamed() {
		t.Skip("no O_TMPFILE staging on this system")
	}
	for _, tc := range []struct {
		umask, mode fs.FileMode
		atOpen      bool
	}{
		{0o022, 0o644, true},
		{0o022, 0o664, false},
		{0o077, 0o644, false},
		{0o002, 0o664, true},
	} {
		t.Run(tc.umask.String()+"/"+tc.mode.String(), func(t *testing.T) {
			old := syscall.Umask(int(tc.umask))
			defer syscall.Umask(old)
			dir := t.TempDir()
			s, _, err := Open(dir, Options{FileMode: tc.mode})
			require.NoError(t, err)
			defer s.Close()
			require.Equal(t, tc.atOpen, s.unnamedMode)
			require.NoError(t, s.Put(t.Context(), []store.File{{Name: "f.txt", Body: memBody("x")}}))
			fi, err := os.Stat(filepath.Join(dir, "f.txt"))
			require.NoError(t, err)
			require.Equal(t, tc.mode, fi.Mode().Perm())
		})
	}
}
