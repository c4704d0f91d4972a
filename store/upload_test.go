package store_test

import (
	"crypto/rand"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/store"
)

func TestValidUploadID(t *testing.T) {
	for range 100 {
		id := store.NewUploadID()
		require.True(t, store.ValidUploadID(id), id)
	}
	id := store.NewUploadID()
	for _, bad := range []string{
		"", ".", "..", "up-1", "abc", strings.ToLower(id), id + "A", id[1:], id[:len(id)-1] + "1",
		id[:len(id)-1] + "-", id[:len(id)-1] + "=", "/" + id[1:], strings.Repeat("A", 512),
	} {
		assert.False(t, store.ValidUploadID(bad), "%q", bad)
	}
	assert.True(t, store.ValidUploadID(strings.Repeat("A", len(rand.Text()))))
}

func TestUploadValidate(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	ok := store.Upload{Name: "a/b.bin", Size: 10, PartSize: store.MinPartSize, SHA256: sum}
	require.NoError(t, ok.Validate())
	for _, u := range []store.Upload{
		{Name: "a.bin", Size: 1, PartSize: 1},
		{Name: "a.bin", Size: store.MaxUploadSize, PartSize: store.MaxPartSize},
		{Name: "a.bin", Size: store.MaxPartCount, PartSize: 1},
	} {
		assert.NoError(t, u.Validate(), "%+v", u)
	}

	with := func(f func(*store.Upload)) store.Upload {
		u := ok
		f(&u)
		return u
	}
	cases := []struct {
		name string
		u    store.Upload
		want error
	}{
		{"no name", with(func(u *store.Upload) { u.Name = "" }), store.ErrInvalidName},
		{"hidden name", with(func(u *store.Upload) { u.Name = ".env" }), store.ErrInvalidName},
		{"bad name before bad size", with(func(u *store.Upload) { u.Name, u.Size = "../a", 0 }), store.ErrInvalidName},
		{"zero size", with(func(u *store.Upload) { u.Size = 0 }), store.ErrInvalidUpload},
		{"negative size", with(func(u *store.Upload) { u.Size = -1 }), store.ErrInvalidUpload},
		{"over what parts hold", with(func(u *store.Upload) { u.Size, u.PartSize = store.MaxUploadSize+1, store.MaxPartSize }), store.ErrUploadTooLarge},
		{"too large before bad digest", with(func(u *store.Upload) { u.Size, u.SHA256 = store.MaxUploadSize+1, "x" }), store.ErrUploadTooLarge},
		{"no part size", with(func(u *store.Upload) { u.PartSize = 0 }), store.ErrInvalidUpload},
		{"part size over the limit", with(func(u *store.Upload) { u.PartSize = store.MaxPartSize + 1 }), store.ErrInvalidUpload},
		{"too many parts", with(func(u *store.Upload) { u.Size, u.PartSize = store.MaxPartCount+1, 1 }), store.ErrInvalidUpload},
		{"digest too short", with(func(u *store.Upload) { u.SHA256 = sum[:63] }), store.ErrInvalidUpload},
		{"digest not hex", with(func(u *store.Upload) { u.SHA256 = strings.Repeat("zz", 32) }), store.ErrInvalidUpload},
		{"digest in upper case", with(func(u *store.Upload) { u.SHA256 = strings.ToUpper(sum) }), store.ErrInvalidUpload},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, tc.u.Validate(), tc.want)
		})
	}
}

func TestParseSHA256(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	got, err := store.ParseSHA256(strings.ToUpper(sum))
	require.NoError(t, err)
	assert.Equal(t, sum, got)
	got, err = store.ParseSHA256("")
	require.NoError(t, err)
	assert.Empty(t, got)
	for _, bad := range []string{"x", sum[:63], sum + "a", strings.Repeat("zz", 32), " " + sum[1:]} {
		_, err := store.ParseSHA256(bad)
		require.ErrorIs(t, err, store.ErrInvalidUpload, "%q", bad)
	}
}
