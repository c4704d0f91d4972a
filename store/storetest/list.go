package storetest

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/store"
)

// ListFactory returns a fresh, empty store like Factory, and a way to
// remove one of its files behind its back, as another process would: the
// Store interface has no delete.
type ListFactory func(t *testing.T) (s store.Store, sp *spool.Spooler, remove func(name string) error)

// RunList runs the listing suite: pages in byte order, prefixes, cursors
// that are not stored names, and files that come and go between pages.
func RunList(t *testing.T, newStore ListFactory) {
	t.Run("PagesInByteOrder", func(t *testing.T) { testListPages(t, newStore) })
	t.Run("Prefix", func(t *testing.T) { testListPrefix(t, newStore) })
	t.Run("After", func(t *testing.T) { testListAfter(t, newStore) })
	t.Run("ChangesBetweenPages", func(t *testing.T) { testListChanges(t, newStore) })
}

// listNames are stored by the listing tests. Their byte order is not the
// order of a walk that sorts each folder on its own: "a-b.txt" and "a.txt"
// sort before "a/x.txt" ('-' and '.' before '/'), "a0.txt" after it. "!"
// and " " sort before the '.' of hidden entries, "~" after everything.
var listNames = []string{
	"a/x.txt", "a.txt", "a-b.txt", "a0.txt", "a/y/z.txt", "a/y.txt", "a/y-z.txt",
	"b.txt", "B.txt", "!first.txt", " lead.txt", "~last.txt", "ü/ä.txt", "u.txt",
	"deep/1/2/3/4.txt", "deep/1/2.txt", "deep/10.txt", "deep/1-0.txt",
}

// putNames stores a small file under each name in one Put.
func putNames(t *testing.T, s store.Store, sp *spool.Spooler, names ...string) {
	t.Helper()
	var puts []store.File
	for i, name := range names {
		f := uploadtest.File{Name: name, Seed: uint64(i), Size: int64(1 + i%7)}
		puts = append(puts, store.File{Name: name, Body: Body(t, sp, f)})
	}
	require.NoError(t, s.Put(t.Context(), puts))
}

// sorted returns names in byte order.
func sorted(names ...string) []string {
	s := slices.Clone(names)
	slices.Sort(s)
	return s
}

// maxPages bounds every paging loop here, so that a store whose cursor
// never advances fails rather than hangs.
const maxPages = 10_000

// ListAll pages through every file whose name begins with prefix, limit
// files a page, checking that each page is full but the last, and returns
// the names in the order listed.
func ListAll(t *testing.T, s store.Store, prefix string, limit int) []string {
	t.Helper()
	var names []string
	opts := store.ListOptions{Prefix: prefix, Limit: limit}
	for range maxPages {
		page, more, err := s.List(t.Context(), opts)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), opts.PageLimit())
		for _, info := range page {
			names = append(names, info.Name)
		}
		if !more {
			return names
		}
		require.Len(t, page, opts.PageLimit(), "a page with more after it must be full")
		opts.After = page[len(page)-1].Name
	}
	require.FailNow(t, "listing did not end", "after %d pages", maxPages)
	return nil
}

func testListPages(t *testing.T, newStore ListFactory) {
	s, sp, _ := newStore(t)
	page, more, err := s.List(t.Context(), store.ListOptions{})
	require.NoError(t, err)
	require.Empty(t, page)
	require.False(t, more)

	putNames(t, s, sp, listNames...)
	// An upload in progress keeps state under a hidden name, which sorts
	// among the names and must be skipped on every page.
	if mp := s.Capabilities().Multipart; mp != nil {
		u, err := mp.CreateUpload(t.Context(), store.Upload{Name: "pending.bin", Size: 2 * store.MinPartSize, PartSize: store.MinPartSize})
		require.NoError(t, err)
		// t.Context is done by the time cleanups run.
		t.Cleanup(func() { assert.NoError(t, mp.Abort(context.Background(), u.ID)) })
	}
	want := sorted(listNames...)
	for _, limit := range []int{1, 2, 3, 7, len(want) - 1, len(want), len(want) + 1, 0, store.MaxListLimit} {
		assert.Equal(t, want, ListAll(t, s, "", limit), "limit %d", limit)
	}

	// Exactly one page: no more after it.
	page, more, err = s.List(t.Context(), store.ListOptions{Limit: len(want)})
	require.NoError(t, err)
	require.Len(t, page, len(want))
	assert.False(t, more)
	for _, info := range page {
		assert.NotEmpty(t, info.ETag, info.Name)
		assert.False(t, info.Modified.IsZero(), info.Name)
		assert.Positive(t, info.Size, info.Name)
	}
}

func testListPrefix(t *testing.T, newStore ListFactory) {
	s, sp, _ := newStore(t)
	putNames(t, s, sp, listNames...)
	for prefix, want := range map[string][]string{
		"":             sorted(listNames...),
		"a/":           {"a/x.txt", "a/y-z.txt", "a/y.txt", "a/y/z.txt"},
		"a":            {"a-b.txt", "a.txt", "a/x.txt", "a/y-z.txt", "a/y.txt", "a/y/z.txt", "a0.txt"},
		"a/y":          {"a/y-z.txt", "a/y.txt", "a/y/z.txt"},
		"a/y/":         {"a/y/z.txt"},
		"deep/1":       {"deep/1-0.txt", "deep/1/2.txt", "deep/1/2/3/4.txt", "deep/10.txt"},
		"deep/1/":      {"deep/1/2.txt", "deep/1/2/3/4.txt"},
		"deep/1/2/3/4": {"deep/1/2/3/4.txt"},
		"ü/":           {"ü/ä.txt"},
		"missing/":     nil,
		"a.txt/":       nil, // a file, not a folder
		"a/x.txt":      {"a/x.txt"},
		"zzz":          nil,
	} {
		for _, limit := range []int{1, 2, 0} {
			assert.Equal(t, want, ListAll(t, s, prefix, limit), "prefix %q, limit %d", prefix, limit)
		}
	}
	for _, prefix := range []string{"/", "../", "a/../", ".spillway/", ".spillway-uploads/", "a//", "a\\b", "a/."} {
		_, _, err := s.List(t.Context(), store.ListOptions{Prefix: prefix})
		assert.ErrorIs(t, err, store.ErrInvalidName, "prefix %q", prefix)
	}
}

func testListAfter(t *testing.T, newStore ListFactory) {
	s, sp, _ := newStore(t)
	putNames(t, s, sp, listNames...)
	all := sorted(listNames...)
	after := func(name string) []string {
		i, _ := slices.BinarySearch(all, name)
		for i < len(all) && all[i] <= name {
			i++
		}
		return all[i:]
	}
	// Names that are stored, and names that are not: between two stored
	// ones, before the first, after the last, a folder's name, a name
	// below a file.
	for _, name := range append(slices.Clone(all), "a/m", "a/y", "a/y/", "a/z", "deep/1", "deep/1/2/3", "0", "zzz", "a.txt/b") {
		for _, limit := range []int{1, 3, 0} {
			var got []string
			opts := store.ListOptions{After: name, Limit: limit}
			for range maxPages {
				page, more, err := s.List(t.Context(), opts)
				require.NoError(t, err)
				for _, info := range page {
					got = append(got, info.Name)
				}
				if !more {
					break
				}
				opts.After = page[len(page)-1].Name
			}
			assert.Equal(t, after(name), append([]string{}, got...), "after %q, limit %d", name, limit)
		}
	}
	// After and Prefix together.
	page, more, err := s.List(t.Context(), store.ListOptions{Prefix: "a/", After: "a/y.txt"})
	require.NoError(t, err)
	assert.False(t, more)
	var got []string
	for _, info := range page {
		got = append(got, info.Name)
	}
	assert.Equal(t, []string{"a/y/z.txt"}, got)
}

// testListChanges adds and removes files between pages: a file that was
// there throughout is listed exactly once, a file added after the cursor
// is listed, one added before it is not (its page was already served), and
// one removed before its page is not.
func testListChanges(t *testing.T, newStore ListFactory) {
	s, sp, remove := newStore(t)
	putNames(t, s, sp, "c1.txt", "c2.txt", "c3.txt", "c4.txt", "c5.txt", "c6.txt", "c7.txt", "c8.txt")

	var got []string
	opts := store.ListOptions{Limit: 2}
	next := func() bool {
		t.Helper()
		page, more, err := s.List(t.Context(), opts)
		require.NoError(t, err)
		for _, info := range page {
			got = append(got, info.Name)
		}
		if more {
			opts.After = page[len(page)-1].Name
		}
		return more
	}
	require.True(t, next()) // c1, c2
	// Before the cursor: not listed. After it: listed. The cursor's own
	// file and the next one removed: the listing goes on after them.
	putNames(t, s, sp, "b.txt", "c1a.txt", "c3a.txt", "d.txt")
	require.NoError(t, remove("c2.txt"))
	require.NoError(t, remove("c3.txt"))
	require.True(t, next()) // c3a, c4
	require.NoError(t, remove("c1.txt"))
	require.NoError(t, remove("c5.txt"))
	putNames(t, s, sp, "c4a.txt")
	for range maxPages {
		if !next() {
			break
		}
	}
	assert.Equal(t, []string{"c1.txt", "c2.txt", "c3a.txt", "c4.txt", "c4a.txt", "c6.txt", "c7.txt", "c8.txt", "d.txt"}, got)
}
