package dirstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"spillway/store"
)

// TestConcurrentPutsShareDirectoryFsyncs: uploads into one folder that
// arrive while its fsync is under way share the next one, and each is
// answered only after an fsync that started after its file was linked.
func TestConcurrentPutsShareDirectoryFsyncs(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, Options{Fsync: true})
	require.NoError(t, err)
	defer s.Close()

	const waiters = 8
	var (
		syncs   atomic.Int64
		entered = make(chan struct{})
		release = make(chan struct{})
		waiting = make(chan struct{}, waiters)
		once    sync.Once
	)
	s.testHookSyncDir = func(string) {
		syncs.Add(1)
		once.Do(func() {
			close(entered)
			<-release
		})
	}
	s.syncs.testHookWait = func() { waiting <- struct{}{} }
	putsBehindHeldSync(t, s, waiters, entered, waiting, release, func() string {
		return fmt.Sprintf("uploads did not wait for the fsync under way; fsyncs so far: %d", syncs.Load())
	})
	require.EqualValues(t, 2, syncs.Load(), "fsyncs of the folder for %d uploads", waiters+1)
	for i := range waiters {
		_, err := os.Stat(filepath.Join(dir, fmt.Sprintf("w%d.txt", i)))
		require.NoError(t, err)
	}
}

// memBody is a store.Body of the bytes of s.
type memBody string

func (b memBody) Size() int64               { return int64(len(b)) }
func (b memBody) SHA256() [sha256.Size]byte { return sha256.Sum256([]byte(b)) }
func (b memBody) CRC64NVME() uint64         { return 0 }
func (b memBody) Reader() *io.SectionReader {
	return io.NewSectionReader(strings.NewReader(string(b)), 0, int64(len(b)))
}

// putsBehindHeldSync puts first.txt and, once its sync is held (entered is
// closed), waiters uploads w0.txt… at once; each must then arrive (a
// receive from arrived: waiting for the held sync, or syncing on its own)
// before release lets the held sync go. Every upload must succeed; stuck
// says what went wrong if they do not all arrive in time.
func putsBehindHeldSync(t *testing.T, s *Store, waiters int, entered <-chan struct{}, arrived <-chan struct{}, release chan struct{}, stuck func() string) {
	t.Helper()
	put := func(name string) error {
		return s.Put(t.Context(), []store.File{{Name: name, Body: memBody(name)}})
	}
	first := make(chan error, 1)
	go func() { first <- put("first.txt") }()
	<-entered
	var wg sync.WaitGroup
	errs := make([]error, waiters)
	for i := range waiters {
		wg.Go(func() { errs[i] = put(fmt.Sprintf("w%d.txt", i)) })
	}
	bound := time.After(10 * time.Second)
	for range waiters {
		select {
		case <-arrived:
		case <-bound:
			close(release)
			t.Fatal(stuck())
		}
	}
	close(release)
	require.NoError(t, <-first)
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
}

// TestSyncGroupsWaiterCancelled: a caller whose context ends stops waiting
// for an fsync, and the fsync still runs for the others.
func TestSyncGroupsWaiterCancelled(t *testing.T) {
	var g syncGroups
	entered, release := make(chan struct{}), make(chan struct{})
	waiting := make(chan struct{}, 2)
	g.testHookWait = func() { waiting <- struct{}{} }
	var runs atomic.Int64
	first := make(chan error, 1)
	go func() {
		first <- g.do(t.Context(), "d", func(int) error {
			runs.Add(1)
			close(entered)
			<-release
			return nil
		})
	}()
	<-entered
	ctx, cancel := context.WithCancel(t.Context())
	cancelled := make(chan error, 1)
	go func() { cancelled <- g.do(ctx, "d", func(int) error { runs.Add(1); return nil }) }()
	other := make(chan error, 1)
	go func() { other <- g.do(t.Context(), "d", func(int) error { runs.Add(1); return nil }) }()
	<-waiting
	<-waiting
	cancel()
	require.ErrorIs(t, <-cancelled, context.Canceled)
	close(release)
	require.NoError(t, <-first)
	require.NoError(t, <-other)
	require.EqualValues(t, 2, runs.Load())
	g.mu.Lock()
	defer g.mu.Unlock()
	require.Empty(t, g.groups, "groups left after every caller returned")
}

// TestConcurrentDurablePutsShareDataSyncs: durable uploads that arrive
// while an upload's bytes are being synced do not fsync each their own
// file: one sync of the filesystem covers them all, and each is answered
// with its file in place.
func TestConcurrentDurablePutsShareDataSyncs(t *testing.T) {
	// Other work on the machine must not make the uploads fsync each their
	// own file, as they do when much is left to write (maxDirtySyncFS).
	testDurablePutsGroup(t, math.MaxInt64, 1, 1)
}

// TestDurableGroupSyncsAloneWhenMuchTurnsDirty: a group whose leader finds
// much left to write, where its members' last reading found little, has
// each member fsync its own file.
func TestDurableGroupSyncsAloneWhenMuchTurnsDirty(t *testing.T) {
	testDurablePutsGroup(t, -1, 9, 0)
}

// testDurablePutsGroup has 8 durable uploads arrive while a first one's
// bytes are being synced, and checks the file fsyncs and filesystem syncs
// they made, with s.maxDirty set to maxDirty after their last reading of
// what is left to write found little.
func testDurablePutsGroup(t *testing.T, maxDirty int64, wantFiles, wantFS int64) {
	t.Helper()
	dir := t.TempDir()
	s, _, err := Open(dir, Options{Fsync: true})
	require.NoError(t, err)
	defer s.Close()
	s.maxDirty = maxDirty
	s.dirtyAt.Store(math.MaxInt64) // the reading holds until a leader reads again

	const waiters = 8
	var (
		files, filesystems atomic.Int64
		entered            = make(chan struct{})
		release            = make(chan struct{})
		arrived            = make(chan struct{}, 2*waiters)
		started            atomic.Bool
	)
	s.testHookSyncData = func(fs bool) {
		if fs {
			filesystems.Add(1)
		} else {
			files.Add(1)
		}
		if started.CompareAndSwap(false, true) {
			close(entered)
			<-release
			return
		}
		arrived <- struct{}{} // an upload syncing on its own: it did not wait
	}
	s.datasyncs.testHookWait = func() { arrived <- struct{}{} }
	putsBehindHeldSync(t, s, waiters, entered, arrived, release, func() string {
		return fmt.Sprintf("uploads neither waited nor synced; data syncs so far: %d", files.Load()+filesystems.Load())
	})
	require.EqualValues(t, wantFiles, files.Load(), "fsyncs of single files for %d uploads", waiters+1)
	require.EqualValues(t, wantFS, filesystems.Load(), "syncs of the filesystem for %d uploads", waiters+1)
	for i := range waiters {
		_, err := os.Stat(filepath.Join(dir, fmt.Sprintf("w%d.txt", i)))
		require.NoError(t, err)
	}
}

// TestDurablePutsSyncAloneWhenMuchIsDirty: with more left to write than a
// shared syncfs may wait for, each durable upload fsyncs its own file.
func TestDurablePutsSyncAloneWhenMuchIsDirty(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, Options{Fsync: true})
	require.NoError(t, err)
	defer s.Close()
	s.maxDirty = -1
	var files, filesystems atomic.Int64
	s.testHookSyncData = func(fs bool) {
		if fs {
			filesystems.Add(1)
		} else {
			files.Add(1)
		}
	}
	const uploads = 16
	var wg sync.WaitGroup
	errs := make([]error, uploads)
	for i := range uploads {
		wg.Go(func() {
			name := fmt.Sprintf("u%d.txt", i)
			errs[i] = s.Put(t.Context(), []store.File{{Name: name, Body: memBody(name)}})
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err)
		_, err = os.Stat(filepath.Join(dir, fmt.Sprintf("u%d.txt", i)))
		require.NoError(t, err)
	}
	require.Zero(t, filesystems.Load(), "syncs of the filesystem")
	require.EqualValues(t, uploads, files.Load(), "fsyncs of single files")
}
