package dirstore

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// OpenPortable opens a Store as Open does, but on the portable fallbacks
// that systems without Linux's fast paths use, so that Linux tests them too.
func OpenPortable(dir string, opts Options) (*Store, int, error) {
	return open(dir, opts, portableSys{})
}

// PrefixParts returns how many parts the upload's running hash covers.
func PrefixParts(t testing.TB, s *Store, id string) int {
	t.Helper()
	h, err := s.lockUpload(id, unix.LOCK_SH)
	require.NoError(t, err)
	defer h.close()
	return h.loadPrefix().parts
}

// errCrash stands for the process dying.
var errCrash = errors.New("crash")

// CrashBeforeMarker runs put, whose PutPart stops dead between writing a
// part's bytes and making its marker, as a process killed there would.
func CrashBeforeMarker(t testing.TB, put func()) {
	t.Helper()
	testHookPartWritten = func() { panic(errCrash) }
	defer func() { testHookPartWritten = nil }()
	defer func() {
		require.Equal(t, errCrash, recover(), "PutPart must reach the hook")
	}()
	put()
}

// CountSweeps counts the sweeps of multipart uploads s makes from now on.
func CountSweeps(t testing.TB, s *Store) func() int {
	var n atomic.Int64
	s.testHookSweepUploads = func() { n.Add(1) }
	t.Cleanup(func() { s.testHookSweepUploads = nil })
	return func() int { return int(n.Load()) }
}

// SweepUploads sweeps s's multipart uploads now, as creations do from time
// to time, and returns how many it removed.
func SweepUploads(s *Store) int { return s.sweepUploads() }

// SetSweepBatch makes each Sweep's retention pass walk at most pages
// pages of limit names.
func SetSweepBatch(s *Store, pages, limit int) { s.expiry.pages, s.expiry.pageLimit = pages, limit }

// OnExpired has each Sweep call fn with each file it found expired, before
// removing it.
func OnExpired(s *Store, fn func(name string)) { s.expiry.testHookExpired = fn }

// CountFolderReads counts the whole-folder reads of s's case-twin checks
// from now on.
func CountFolderReads(t testing.TB, s *Store) func() int {
	var n atomic.Int64
	s.folds.testHookRead = func() { n.Add(1) }
	t.Cleanup(func() { s.folds.testHookRead = nil })
	return func() int { return int(n.Load()) }
}

// ForgetLastSweep makes s's last sweep of uploads look long past, as it
// is once a server has run for a while.
func ForgetLastSweep(s *Store) { s.lastSweep.Store(0) }
