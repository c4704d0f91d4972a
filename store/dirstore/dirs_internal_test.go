package dirstore

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Two calls stage files in the same new directory: A makes it, B finds it.
// A fails and removes what it made, while B has not yet put anything of its
// own there, or while B has. The interleavings are driven step by step.
func TestDirRemovedFromUnderAStagedFile(t *testing.T) {
	for _, tc := range []struct {
		name      string
		link      bool // stageLink B's body, otherwise stageCopy it
		unnamed   bool // stageCopy with O_TMPFILE, otherwise a named staging file
		overwrite bool
		// staged: A fails after B staged, not before. B's named staging
		// file then keeps the directory; an O_TMPFILE file does not.
		staged bool
	}{
		{name: "unnamed, removed before staging", unnamed: true},
		{name: "unnamed, removed before commit", unnamed: true, staged: true},
		{name: "unnamed, overwrite, removed before commit", unnamed: true, overwrite: true, staged: true},
		{name: "named, removed before staging"},
		{name: "named, A fails after staging", staged: true},
		{name: "named, overwrite, A fails after staging", overwrite: true, staged: true},
		{name: "link, removed before staging", link: true},
		{name: "link, A fails after staging", link: true, staged: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _, err := Open(dir, Options{Overwrite: tc.overwrite})
			require.NoError(t, err)
			defer s.Close()
			if tc.unnamed && !s.unnamed {
				t.Skip("no /proc/self/fd")
			}
			s.unnamed = tc.unnamed

			var madeA, madeB madeDirs
			a, err := s.newStaged("n/m/a.bin", &madeA)
			require.NoError(t, err)
			require.Equal(t, madeDirs{"n", "n/m"}, madeA)
			b, err := s.newStaged("n/m/b.bin", &madeB)
			require.NoError(t, err)
			defer b.close()
			require.Empty(t, madeB, "B found the directories A made")
			failA := func() {
				a.close()
				madeA.remove(s.root)
			}

			if !tc.staged {
				failA()
				require.NoDirExists(t, filepath.Join(dir, "n"))
			}
			if tc.link {
				src, err := os.CreateTemp(t.TempDir(), "spool")
				require.NoError(t, err)
				defer src.Close()
				_, err = io.WriteString(src, "linked")
				require.NoError(t, err)
				linked, err := s.stageLink(b, src, func() error { return os.Remove(src.Name()) })
				require.NoError(t, err)
				require.True(t, linked, "the spool file must be linked, not copied")
			} else {
				require.NoError(t, s.stageCopy(b, func(w io.Writer) error {
					_, err := io.WriteString(w, "copied")
					return err
				}))
				if !tc.unnamed || !b.unnamed {
					// The named path, chosen or fallen back to.
					require.NotEmpty(t, b.tmp)
				}
			}
			pinned := tc.staged && b.tmp != ""
			if tc.staged {
				failA()
				if pinned {
					assert.DirExists(t, filepath.Join(dir, "n", "m"), "B's staging file keeps the directory")
				} else {
					require.NoDirExists(t, filepath.Join(dir, "n"))
				}
			}

			require.NoError(t, b.commit(tc.overwrite))
			got, err := os.ReadFile(filepath.Join(dir, "n", "m", "b.bin"))
			require.NoError(t, err)
			assert.Equal(t, map[bool]string{true: "linked", false: "copied"}[tc.link], string(got))
			if pinned {
				assert.Empty(t, madeB)
			} else {
				// Made again, by B this time: B's own failure would take
				// them back.
				assert.Equal(t, madeDirs{"n", "n/m"}, madeB)
			}
			b.close()
			entries, err := os.ReadDir(filepath.Join(dir, "n", "m"))
			require.NoError(t, err)
			require.Len(t, entries, 1, "b.bin and no staging file")
		})
	}
}

// A parent that goes between finding it and making the child under it (as
// the cleanup of the failed call that made it removes it) is made again,
// and recorded as made.
func TestOpenDirMakesARemovedParentAgain(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, Options{})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "p"), 0o755))
	var calls []string
	testHookMkdir = func(name string, err error) {
		calls = append(calls, name)
		if len(calls) == 1 {
			require.ErrorIs(t, err, fs.ErrExist)
			require.NoError(t, os.Remove(filepath.Join(dir, "p")))
		}
	}
	defer func() { testHookMkdir = nil }()
	var made madeDirs
	d, err := s.openDir("p/q", &made)
	require.NoError(t, err)
	d.Close()
	assert.Equal(t, []string{"p", "p/q", "p", "p/q"}, calls)
	assert.Equal(t, madeDirs{"p", "p/q"}, made)
	assert.DirExists(t, filepath.Join(dir, "p", "q"))
}

func TestMadeDirsRemoveOnlyEmptyDirectories(t *testing.T) {
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	require.NoError(t, err)
	defer root.Close()
	for _, d := range []string{"a/b/c", "a/x", "kept/sub", "gone/sub"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a", "x", "f.bin"), nil, 0o644))
	// A file where a directory was made: never removed.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "file"), nil, 0o644))

	// Listed parents first and twice, as retries record them: removed
	// deepest first all the same.
	madeDirs{"a", "a/b", "a/b/c", "a/x", "gone", "gone/sub", "gone", "file", "missing"}.remove(root)
	assert.DirExists(t, filepath.Join(dir, "a"), "holds a/x, which holds a file")
	assert.NoDirExists(t, filepath.Join(dir, "a", "b"))
	assert.FileExists(t, filepath.Join(dir, "a", "x", "f.bin"))
	assert.NoDirExists(t, filepath.Join(dir, "gone"))
	assert.FileExists(t, filepath.Join(dir, "file"))
	assert.DirExists(t, filepath.Join(dir, "kept", "sub"), "not made by the call")
}
