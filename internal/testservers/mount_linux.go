package testservers

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// MountTmpfs mounts a tmpfs of size bytes, for tests of a full disk, and
// unmounts it when the test ends (after every cleanup registered later,
// such as a server's kill). Without the privilege to mount (root, or
// CAP_SYS_ADMIN, which a loop mount needs as well) the test skips, saying
// so, except under CI=true, where it fails.
func MountTmpfs(t testing.TB, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small")
	require.NoError(t, os.Mkdir(dir, 0o700))
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		msg := fmt.Sprintf("this test needs a small filesystem: mount -t tmpfs: %v (not root, or no CAP_SYS_ADMIN)", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v (detaching it)", dir, err)
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	return dir
}
