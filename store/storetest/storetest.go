// Package storetest is the conformance suite every store.Store passes: the
// local directory store and S3 run the same tests.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/minio/crc64nvme"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/store"
)

// Factory returns a fresh, empty, no-overwrite store, and the spooler whose
// bodies it will be given.
type Factory func(t *testing.T) (store.Store, *spool.Spooler)

// Run runs the suite.
func Run(t *testing.T, newStore Factory) {
	t.Run("PutListOpen", func(t *testing.T) { testPutListOpen(t, newStore) })
	t.Run("NoOverwrite", func(t *testing.T) { testNoOverwrite(t, newStore) })
	t.Run("AllOrNothing", func(t *testing.T) { testAllOrNothing(t, newStore) })
	t.Run("ConcurrentSameName", func(t *testing.T) { testConcurrentSameName(t, newStore) })
	t.Run("NotFoundAndInvalid", func(t *testing.T) { testNotFoundAndInvalid(t, newStore) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, newStore) })
	t.Run("DeleteRacesPut", func(t *testing.T) { testDeleteRacesPut(t, newStore) })
	t.Run("PlainBodies", func(t *testing.T) { testPlainBodies(t, newStore) })
}

// A spooled body is a store.FileBody, which a store may link.
var _ store.FileBody = (*spool.Body)(nil)

// MemBody returns f as a store.Body held in memory, with nothing but the
// Body methods: for tests in which how a body was spooled is not the point.
func MemBody(f uploadtest.File) store.Body {
	data := f.Bytes()
	return &memBody{data: data, sum: sha256.Sum256(data), crc: crc64nvme.Checksum(data)}
}

type memBody struct {
	data []byte
	sum  [sha256.Size]byte
	crc  uint64
}

func (b *memBody) Size() int64               { return int64(len(b.data)) }
func (b *memBody) SHA256() [sha256.Size]byte { return b.sum }
func (b *memBody) CRC64NVME() uint64         { return b.crc }
func (b *memBody) Reader() *io.SectionReader {
	return io.NewSectionReader(bytes.NewReader(b.data), 0, int64(len(b.data)))
}

// Body spools f with sp and closes it when the test ends.
func Body(t *testing.T, sp *spool.Spooler, f uploadtest.File) *spool.Body {
	t.Helper()
	b, err := sp.Spool(t.Context(), f.Reader(), f.Size)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, b.Close()) })
	return b
}

// RequireStored fails t unless s serves f's bytes under f.Name.
func RequireStored(t *testing.T, s store.Store, f uploadtest.File) {
	t.Helper()
	info, rc, err := s.Open(t.Context(), f.Name)
	require.NoError(t, err, f.Name)
	defer rc.Close()
	assert.Equal(t, f.Name, info.Name)
	assert.Equal(t, f.Size, info.Size)
	assert.NotEmpty(t, info.ETag)
	assert.False(t, info.Modified.IsZero())
	uploadtest.RequireContent(t, f, rc)
	stat, err := s.Stat(t.Context(), f.Name)
	require.NoError(t, err, f.Name)
	assert.Equal(t, info, stat, "Stat and Open describe %q alike", f.Name)
}

// RequireAbsent fails t unless nothing is stored under name.
func RequireAbsent(t *testing.T, s store.Store, name string) {
	t.Helper()
	_, rc, err := s.Open(t.Context(), name)
	if err == nil {
		rc.Close()
	}
	require.ErrorIs(t, err, store.ErrNotFound, name)
	_, err = s.Stat(t.Context(), name)
	require.ErrorIs(t, err, store.ErrNotFound, name)
}

func testPutListOpen(t *testing.T, newStore Factory) {
	s, sp := newStore(t)
	th := sp.Threshold()
	files := []uploadtest.File{
		{Name: "b.bin", Seed: 1, Size: th},            // memory
		{Name: "a/deep/c.bin", Seed: 2, Size: th + 1}, // disk
		{Name: "a/empty.txt", Seed: 3, Size: 0},
		{Name: "a.txt", Seed: 4, Size: 10},
	}
	var puts []store.File
	for _, f := range files {
		require.NoError(t, s.Check(t.Context(), f.Name, f.Size))
		puts = append(puts, store.File{Name: f.Name, Body: Body(t, sp, f)})
	}
	require.NoError(t, s.Put(t.Context(), puts))
	for _, f := range files {
		RequireStored(t, s, f)
	}
	list, more, err := s.List(t.Context(), store.ListOptions{})
	require.NoError(t, err)
	require.False(t, more)
	var names []string
	for _, info := range list {
		names = append(names, info.Name)
	}
	assert.Equal(t, []string{"a.txt", "a/deep/c.bin", "a/empty.txt", "b.bin"}, names)
	assert.Equal(t, th+1, list[1].Size)
	// A directory (or a key prefix) is not a file.
	RequireAbsent(t, s, "a/deep")
}

func testNoOverwrite(t *testing.T, newStore Factory) {
	s, sp := newStore(t)
	first := uploadtest.File{Name: "x/taken.bin", Seed: 1, Size: 100}
	require.NoError(t, s.Put(t.Context(), []store.File{{Name: first.Name, Body: Body(t, sp, first)}}))
	require.ErrorIs(t, s.Check(t.Context(), first.Name, 1), store.ErrExists)

	for _, size := range []int64{50, sp.Threshold() + 1} {
		second := uploadtest.File{Name: first.Name, Seed: 2, Size: size}
		err := s.Put(t.Context(), []store.File{{Name: second.Name, Body: Body(t, sp, second)}})
		require.ErrorIs(t, err, store.ErrExists)
		RequireStored(t, s, first)
	}
}

func testAllOrNothing(t *testing.T, newStore Factory) {
	s, sp := newStore(t)
	taken := uploadtest.File{Name: "taken.bin", Seed: 9, Size: 10}
	require.NoError(t, s.Put(t.Context(), []store.File{{Name: taken.Name, Body: Body(t, sp, taken)}}))

	files := []uploadtest.File{
		{Name: "one.bin", Seed: 1, Size: 1},
		{Name: "sub/two.bin", Seed: 2, Size: sp.Threshold() + 1},
		{Name: taken.Name, Seed: 3, Size: 5},
	}
	var puts []store.File
	for _, f := range files {
		puts = append(puts, store.File{Name: f.Name, Body: Body(t, sp, f)})
	}
	require.ErrorIs(t, s.Put(t.Context(), puts), store.ErrExists)
	RequireAbsent(t, s, "one.bin")
	RequireAbsent(t, s, "sub/two.bin")
	RequireStored(t, s, taken)
	require.Equal(t, []string{taken.Name}, ListAll(t, s, "", 0), "only the file that was there before may be listed")

	// The same name twice in one request is refused as a whole, too.
	dup := uploadtest.File{Name: "dup.bin", Seed: 4, Size: 3}
	err := s.Put(t.Context(), []store.File{{Name: dup.Name, Body: Body(t, sp, dup)}, {Name: dup.Name, Body: Body(t, sp, dup)}})
	require.ErrorIs(t, err, store.ErrExists)
	RequireAbsent(t, s, dup.Name)
}

func testConcurrentSameName(t *testing.T, newStore Factory) {
	s, sp := newStore(t)
	const racers = 8
	files := make([]uploadtest.File, racers)
	bodies := make([]*spool.Body, racers)
	for i := range racers {
		// Alternate memory and disk bodies so both publish paths race.
		size := int64(1000 + i)
		if i%2 == 1 {
			size = sp.Threshold() + int64(i)
		}
		files[i] = uploadtest.File{Name: "race.bin", Seed: uint64(i), Size: size}
		bodies[i] = Body(t, sp, files[i])
	}
	winner := race(t, racers, func(i int) error {
		return s.Put(context.Background(), []store.File{{Name: "race.bin", Body: bodies[i]}})
	}, store.ErrExists)
	RequireStored(t, s, files[winner])
}

// race runs n calls of fn at once and requires exactly one of them to
// succeed and every other to fail with one of losers. It returns the
// winner.
func race(t *testing.T, n int, fn func(i int) error, losers ...error) int {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, winner, "two racers both succeeded: %v", errs)
			winner = i
			continue
		}
		require.True(t, slices.ContainsFunc(losers, func(l error) bool { return errors.Is(err, l) }),
			"a losing racer failed with %v, want one of %v", err, losers)
	}
	require.NotEqual(t, -1, winner, "no racer succeeded: %v", errs)
	return winner
}

func testNotFoundAndInvalid(t *testing.T, newStore Factory) {
	s, sp := newStore(t)
	RequireAbsent(t, s, "missing.bin")
	for _, name := range []string{"", "../x", "/abs", "a//b", ".hidden", "a\\b", "a\x00b", strings.Repeat("a", 256)} {
		_, _, err := s.Open(t.Context(), name)
		require.ErrorIs(t, err, store.ErrInvalidName, "%q", name)
		_, err = s.Stat(t.Context(), name)
		require.ErrorIs(t, err, store.ErrInvalidName, "%q", name)
		require.ErrorIs(t, s.Check(t.Context(), name, 1), store.ErrInvalidName, "%q", name)
		f := uploadtest.File{Name: name, Size: 1}
		err = s.Put(t.Context(), []store.File{{Name: name, Body: Body(t, sp, f)}})
		require.ErrorIs(t, err, store.ErrInvalidName, "%q", name)
	}
	list := ListAll(t, s, "", 0)
	require.Empty(t, list, fmt.Sprint(list))
}

func testDelete(t *testing.T, newStore Factory) {
	s, sp := newStore(t)
	ctx := t.Context()
	put := func(f uploadtest.File) {
		t.Helper()
		require.NoError(t, s.Put(ctx, []store.File{{Name: f.Name, Body: Body(t, sp, f)}}))
	}
	top := uploadtest.File{Name: "Top.bin", Seed: 1, Size: sp.Threshold() + 1}
	deep := uploadtest.File{Name: "a/b/deep.bin", Seed: 2, Size: 10}
	beside := uploadtest.File{Name: "a/beside.txt", Seed: 3, Size: 5}
	for _, f := range []uploadtest.File{top, deep, beside} {
		put(f)
	}

	require.NoError(t, s.Delete(ctx, top.Name))
	RequireAbsent(t, s, top.Name)
	require.ErrorIs(t, s.Delete(ctx, top.Name), store.ErrNotFound, "a second delete")
	require.ErrorIs(t, s.Delete(ctx, "missing.bin"), store.ErrNotFound)
	require.ErrorIs(t, s.Delete(ctx, "a/missing/x.bin"), store.ErrNotFound)
	require.ErrorIs(t, s.Delete(ctx, "a/beside.txt/x"), store.ErrNotFound, "a file used as a folder")
	for _, folder := range []string{"a", "a/b"} {
		require.ErrorIs(t, s.Delete(ctx, folder), store.ErrNotFound, "a folder is not a file")
	}
	for _, name := range []string{"", "../x", "/abs", "a//b", ".hidden", "a/.hidden", "a\\b"} {
		require.ErrorIs(t, s.Delete(ctx, name), store.ErrInvalidName, "%q", name)
	}
	RequireStored(t, s, deep)
	RequireStored(t, s, beside)

	// The name is free again, in any case, with other bytes.
	again := uploadtest.File{Name: top.Name, Seed: 4, Size: 7}
	require.NoError(t, s.Check(ctx, again.Name, again.Size))
	put(again)
	RequireStored(t, s, again)
	require.NoError(t, s.Delete(ctx, again.Name))
	lower := uploadtest.File{Name: "top.bin", Seed: 5, Size: 8}
	put(lower)
	RequireStored(t, s, lower)

	// Deleting the last file of a folder frees the folder's name for a
	// file, as if the folder had never been made.
	require.NoError(t, s.Delete(ctx, deep.Name))
	RequireAbsent(t, s, deep.Name)
	asFile := uploadtest.File{Name: "a/b", Seed: 6, Size: 3}
	require.NoError(t, s.Check(ctx, asFile.Name, asFile.Size))
	put(asFile)
	RequireStored(t, s, asFile)
	require.Equal(t, []string{"a/b", "a/beside.txt", "top.bin"}, ListAll(t, s, "", 0))
}

// testPlainBodies: a store publishes any store.Body, not only the
// spooler's, whatever its size.
func testPlainBodies(t *testing.T, newStore Factory) {
	s, sp := newStore(t)
	files := []uploadtest.File{
		{Name: "plain/empty.bin", Seed: 1, Size: 0},
		{Name: "plain/one.bin", Seed: 2, Size: 1},
		{Name: "plain/over.bin", Seed: 3, Size: sp.Threshold() + 1},
		{Name: "plain/large.bin", Seed: 4, Size: 3<<20 + 5},
	}
	var puts []store.File
	for _, f := range files {
		puts = append(puts, store.File{Name: f.Name, Body: MemBody(f)})
	}
	require.NoError(t, s.Put(t.Context(), puts))
	for _, f := range files {
		RequireStored(t, s, f)
	}
}

// testDeleteRacesPut deletes a file while another upload of its name is
// published: either the delete came first and the upload is stored, or
// the upload was refused and the name is free.
func testDeleteRacesPut(t *testing.T, newStore Factory) {
	s, sp := newStore(t)
	ctx := t.Context()
	for i := range 8 {
		old := uploadtest.File{Name: "raced.bin", Seed: uint64(2 * i), Size: 100}
		require.NoError(t, s.Put(ctx, []store.File{{Name: old.Name, Body: Body(t, sp, old)}}))
		size := int64(50)
		if i%2 == 1 {
			size = sp.Threshold() + 1
		}
		next := uploadtest.File{Name: old.Name, Seed: uint64(2*i + 1), Size: size}
		body := Body(t, sp, next)
		var delErr, putErr error
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Go(func() { <-start; delErr = s.Delete(context.Background(), old.Name) })
		wg.Go(func() { <-start; putErr = s.Put(context.Background(), []store.File{{Name: next.Name, Body: body}}) })
		close(start)
		wg.Wait()
		require.NoError(t, delErr, "the file was there when the delete began")
		if putErr == nil {
			RequireStored(t, s, next)
			require.NoError(t, s.Delete(ctx, next.Name))
		} else {
			require.ErrorIs(t, putErr, store.ErrExists)
			RequireAbsent(t, s, old.Name)
		}
	}
}
