package bytesize_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/bytesize"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "123": 123, "123B": 123, "2MiB": 2 << 20, "2mib": 2 << 20, "2 MiB": 2 << 20,
		"10GB": 10e9, "512k": 512 << 10, "512K": 512 << 10, "1kB": 1000, "64m": 64 << 20,
		"1g": 1 << 30, "3TiB": 3 << 40, " 7 ": 7,
	} {
		got, err := bytesize.Parse(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "MiB", "-1", "1.5GiB", "12XB", "99999999999TiB", "1e6", "0x10"} {
		_, err := bytesize.Parse(in)
		assert.Error(t, err, in)
	}
}

func TestFormatRoundTrips(t *testing.T) {
	for _, n := range []int64{0, 1, 1000, 1024, 2 << 20, 64 << 20, 3<<30 + 1, 5 << 40} {
		got, err := bytesize.Parse(bytesize.Format(n))
		require.NoError(t, err)
		assert.Equal(t, n, got)
	}
	assert.Equal(t, "2MiB", bytesize.Format(2<<20))
}
