package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"spillway/internal/uploadtest"
)

// TestSpoolFilesNeverReadableInTheSpoolDir watches the spool dir while raw
// uploads go through the real binary: at every change of a spool file's
// attributes (a chmod among them) the file, if it still has its name
// there, must be 0600.
func TestSpoolFilesNeverReadableInTheSpoolDir(t *testing.T) {
	bin := buildServer(t)
	dir, spoolDir := filepath.Join(t.TempDir(), "uploads"), t.TempDir()
	ino, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	require.NoError(t, err)
	_, err = unix.InotifyAddWatch(ino, spoolDir, unix.IN_ATTRIB|unix.IN_CREATE)
	require.NoError(t, err)

	var (
		mu      sync.Mutex
		exposed []string
		seen    int // attribute changes seen
	)
	const stop = "stop-watching"
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		defer unix.Close(ino)
		buf := make([]byte, 64<<10)
		for {
			n, err := unix.Read(ino, buf)
			if err != nil || n <= 0 {
				mu.Lock()
				exposed = append(exposed, fmt.Sprintf("inotify read: %d, %v", n, err))
				mu.Unlock()
				return
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				// struct inotify_event: wd, mask, cookie, len, then the name.
				mask := binary.NativeEndian.Uint32(buf[off+4:])
				nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
				name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+nameLen]), "\x00")
				off += unix.SizeofInotifyEvent + nameLen
				if name == stop {
					return
				}
				var st unix.Stat_t
				if unix.Lstat(filepath.Join(spoolDir, name), &st) != nil {
					continue // gone already: no name, nothing to read
				}
				mu.Lock()
				if mask&unix.IN_ATTRIB != 0 {
					seen++
				}
				if st.Mode&0o777 != 0o600 {
					exposed = append(exposed, name+" "+os.FileMode(st.Mode&0o777).String())
				}
				mu.Unlock()
			}
		}
	}()

	p := startProc(t, bin, dir, spoolDir, "--threshold", "0")
	const uploads = 8
	for i := range uploads {
		f := uploadtest.File{Name: "f" + string(rune('a'+i)) + ".bin", Seed: uint64(i), Size: 4 << 20}
		requirePut(t, p, f)
		fi, err := os.Stat(filepath.Join(dir, f.Name))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
	}
	p.Term(t, 10*time.Second)
	require.NoError(t, os.WriteFile(filepath.Join(spoolDir, stop), nil, 0o600))
	<-watched
	require.NoError(t, os.Remove(filepath.Join(spoolDir, stop)))
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d uploads, %d attribute changes of named spool files seen, %d not 0600", uploads, seen, len(exposed))
	assert.Empty(t, exposed, "spool files readable by others while in the spool dir (%d attribute changes seen)", seen)
	uploadtest.RequireEmptyDir(t, spoolDir)
}
