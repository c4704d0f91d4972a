package dirstore

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestLinkFileByDescriptor links O_TMPFILE files by descriptor, by
// AT_EMPTY_PATH and, once that is refused, through /proc: the link lands
// either way, a name taken is EEXIST, and a file with no name left is
// ENOENT, neither of which stops AT_EMPTY_PATH from being tried again.
func TestLinkFileByDescriptor(t *testing.T) {
	l, ok := defaultSys().(linuxSys)
	require.True(t, ok)
	if !l.proc {
		if os.Getenv("CI") == "true" {
			t.Fatal("no /proc/self/fd: cannot test linking by descriptor")
		}
		t.Skip("no /proc/self/fd: no O_TMPFILE staging")
	}
	dir := t.TempDir()
	d, err := os.Open(dir)
	require.NoError(t, err)
	defer d.Close()
	dirfd := int(d.Fd())
	unnamed := func() *os.File {
		fd, err := l.openUnnamed(dirfd, 0o600)
		require.NoError(t, err)
		f := os.NewFile(uintptr(fd), "unnamed")
		t.Cleanup(func() { f.Close() })
		return f
	}
	for _, refused := range []bool{false, true} {
		l.emptyPathRefused.Store(refused)
		name := "linked-" + map[bool]string{false: "first", true: "proc"}[refused]
		require.NoError(t, l.linkFile(unnamed(), dirfd, name))
		assert.FileExists(t, filepath.Join(dir, name))
		require.ErrorIs(t, l.linkFile(unnamed(), dirfd, name), unix.EEXIST)

		named, err := os.Create(filepath.Join(dir, "gone-"+name))
		require.NoError(t, err)
		require.NoError(t, os.Remove(named.Name()))
		require.ErrorIs(t, l.linkFile(named, dirfd, "gone"), unix.ENOENT)
		named.Close()
		if refused {
			assert.True(t, l.emptyPathRefused.Load(), "refused stays refused")
		}
	}
	l.emptyPathRefused.Store(false)
	require.NoError(t, l.linkFile(unnamed(), dirfd, "again"))
	if os.Geteuid() == 0 {
		// Root has CAP_DAC_READ_SEARCH: the first way works, and nothing
		// here may have latched it off.
		assert.False(t, l.emptyPathRefused.Load())
	}
}
