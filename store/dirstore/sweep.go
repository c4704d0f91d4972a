package dirstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"spillway/store"
)

// Swept counts what one Sweep removed.
type Swept struct {
	// Uploads is the multipart and tus uploads idle for longer than
	// Options.UploadTTL.
	Uploads int
	// Expired is the files older than Options.Retention.
	Expired int
}

// sweepPages bounds the work of one Sweep's retention pass: this many
// pages of store.MaxListLimit names. A tree larger than that is covered
// over several Sweeps, each going on after the last name of the one
// before.
const sweepPages = 100

// errKept is a file the retention pass found old, but which is no longer
// old by the time it would be removed: touched, or removed and stored
// again under its name.
var errKept = errors.New("dirstore: file modified since it was found expired")

// expirySweep is the retention pass's state between Sweeps.
type expirySweep struct {
	mu sync.Mutex
	// after is the name the next pass starts after; empty, from the first.
	after string
	// pages and pageLimit, when set, replace sweepPages and
	// store.MaxListLimit, for tests.
	pages, pageLimit int
	// testHookExpired, if set, is called with each file found expired,
	// before it is removed.
	testHookExpired func(name string)
}

// Sweep is the store's housekeeping, for the program that owns the store
// to run every so often. It removes multipart and tus uploads idle for
// longer than Options.UploadTTL, as creating an upload also does, and,
// with Options.Retention, the files whose modification time is older than
// that.
//
// The retention pass sees only what GET /files lists, so never the
// store's own state under dot-folders (uploads in progress, staging
// files). It removes each file as Delete does, so the folders it leaves
// empty go too, and a download that has the file open reads on. The
// file's age is checked again under its folder's lock just before the
// unlink, so a file stored again under the name since it was listed
// stays; with Options.CaseSensitiveNames there is no lock, and a narrow
// window remains. It walks at most sweepPages pages of names and stops
// early when ctx is done; the next Sweep goes on where it stopped.
//
// Calls are serialised. The error, if any, is the first failure to list
// or remove; the rest of the pass still ran.
func (s *Store) Sweep(ctx context.Context) (Swept, error) {
	s.expiry.mu.Lock()
	defer s.expiry.mu.Unlock()
	var sw Swept
	if err := ctx.Err(); err != nil {
		return sw, err
	}
	sw.Uploads = s.sweepUploads()
	if s.opts.Retention <= 0 {
		return sw, nil
	}
	var err error
	sw.Expired, err = s.sweepExpired(ctx, time.Now().Add(-s.opts.Retention))
	return sw, err
}

// sweepExpired removes the files modified before cutoff, from after the
// name the last pass stopped at, for at most a pass's pages.
func (s *Store) sweepExpired(ctx context.Context, cutoff time.Time) (int, error) {
	e := &s.expiry
	pages, limit := e.pages, e.pageLimit
	if pages <= 0 {
		pages = sweepPages
	}
	if limit <= 0 {
		limit = store.MaxListLimit
	}
	removed := 0
	var first error
	old := func(st *unix.Stat_t) error {
		if time.Unix(st.Mtim.Unix()).Before(cutoff) {
			return nil
		}
		return errKept
	}
	for range pages {
		infos, more, err := s.List(ctx, store.ListOptions{After: e.after, Limit: limit})
		if err != nil {
			return removed, errors.Join(first, fmt.Errorf("dirstore: retention: %w", err))
		}
		for _, info := range infos {
			if err := ctx.Err(); err != nil {
				return removed, err
			}
			e.after = info.Name
			if !info.Modified.Before(cutoff) {
				continue
			}
			if e.testHookExpired != nil {
				e.testHookExpired(info.Name)
			}
			switch err := s.remove(info.Name, old); {
			case err == nil:
				removed++
			case errors.Is(err, errKept), errors.Is(err, store.ErrNotFound):
			case first == nil:
				first = fmt.Errorf("dirstore: retention: %w", err)
			}
		}
		if !more {
			e.after = "" // the next pass starts over
			break
		}
	}
	return removed, first
}
