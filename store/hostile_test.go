package store_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"spillway/internal/uploadtest"
	"spillway/store"
)

// TestHostileNames runs the shared corpus through the name rules: every
// entry must be refused, with an error that wraps ErrInvalidName.
func TestHostileNames(t *testing.T) {
	for _, h := range uploadtest.HostileNames(t) {
		err := store.ValidateName(h.Name)
		if assert.ErrorIs(t, err, store.ErrInvalidName, "%.80q (%s)", h.Name, h.Why) {
			assert.NotEmpty(t, err.Error())
		}
	}
}

// TestHostileNeighboursStayValid guards against rules so broad that they
// refuse ordinary names that merely resemble hostile ones.
func TestHostileNeighboursStayValid(t *testing.T) {
	for _, name := range []string{
		"a..b", "x...y.txt", "COM10", "LPT10.txt", "CONSOLE-notes", "nul_file", "x/aux1", "auxiliary.txt",
		"10.30 notes.txt", "❤.txt", "日本語.txt", "ファイル.txt", "ノート.txt", "٢٠٢٦.pdf",
		"100% done.txt", "%2e%2e", "%2e%2e%2fetc%2fpasswd", "a b.txt", "Ω/≠.txt",
	} {
		assert.NoError(t, store.ValidateName(name), "%q", name)
	}
}
