package sniff_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/sniff"
)

func TestParseAllow(t *testing.T) {
	r, err := sniff.Parse(" image/*, Application/PDF ,")
	require.NoError(t, err)
	assert.Equal(t, "image/*,application/pdf", r.String())
	assert.True(t, r.Allow("image/png"))
	assert.True(t, r.Allow("application/pdf"))
	assert.False(t, r.Allow("text/plain; charset=utf-8"))
	assert.False(t, r.Allow("application/octet-stream"))

	r, err = sniff.Parse("text/plain")
	require.NoError(t, err)
	assert.True(t, r.Allow("text/plain; charset=utf-8"), "parameters are ignored")

	for _, bad := range []string{"image", "*/*", "image/p*", "/png", "text/plain; charset=utf-8"} {
		_, err := sniff.Parse(bad)
		assert.Error(t, err, bad)
	}
	any, err := sniff.Parse("")
	require.NoError(t, err)
	assert.True(t, any.Any())
	assert.True(t, any.Allow("application/x-anything"))
}

func TestDetect(t *testing.T) {
	for body, want := range map[string]string{
		"%PDF-1.7\n":                "application/pdf",
		"\x89PNG\r\n\x1a\n\x00\x00": "image/png",
		"plain words":               "text/plain; charset=utf-8",
		"":                          "text/plain; charset=utf-8",
		"\x00\x01\x02\x03garbage":   "application/octet-stream",
	} {
		got, err := sniff.Detect(strings.NewReader(body))
		require.NoError(t, err)
		assert.Equal(t, want, got, "%q", body)
	}
	// Only the first bytes count.
	big := append([]byte("%PDF-"), bytes.Repeat([]byte{0}, 1<<20)...)
	got, err := sniff.Detect(bytes.NewReader(big))
	require.NoError(t, err)
	assert.Equal(t, "application/pdf", got)
}
