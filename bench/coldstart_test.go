package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReplaceSection(t *testing.T) {
	section := func(body string) string { return coldStartBegin + "\n" + body + "\n" + coldStartEnd + "\n" }
	head := "# Benchmarks\n\n## Go benchmarks\n\nfigures\n"

	doc := replaceSection(head, section("first"))
	assert.Equal(t, head+"\n"+section("first"), doc)
	assert.Equal(t, section("first"), markedSection(doc))

	doc = replaceSection(doc, section("second"))
	assert.Equal(t, head+"\n"+section("second"), doc, "replaced in place, not added")
	assert.Equal(t, 1, strings.Count(doc, coldStartBegin))

	// What `make bench` does: a new report, with the kept section.
	regenerated := replaceSection("# Benchmarks\n\nnew figures\n", markedSection(doc))
	assert.Equal(t, "# Benchmarks\n\nnew figures\n\n"+section("second"), regenerated)

	assert.Equal(t, section("x"), replaceSection("", section("x")))
	assert.Empty(t, markedSection(head))
	assert.Empty(t, markedSection(coldStartEnd+"\n"+coldStartBegin), "markers out of order are no section")
}

func TestPercentile(t *testing.T) {
	v := []float64{4, 1, 3, 2, 5}
	assert.Equal(t, 1.0, percentile(v, 0))
	assert.Equal(t, 2.0, percentile(v, 25))
	assert.Equal(t, median(v), percentile(v, 50))
	assert.Equal(t, 5.0, percentile(v, 100))
	assert.Equal(t, 2.5, percentile([]float64{2, 3}, 50))
	assert.Equal(t, []float64{4, 1, 3, 2, 5}, v, "the input is left alone")
	assert.Zero(t, percentile(nil, 50))
}

// TestColdStart runs `go run ./bench coldstart` with few starts against
// HEAD, so that the lead's command keeps working: both builds measured
// under the real emulator, the section written beside what the file held,
// and nothing left in the temporary directory.
func TestColdStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the function twice and runs the Lambda emulator; skipped in -short mode")
	}
	out := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	require.NoError(t, os.WriteFile(out, []byte("# Benchmarks\n\nkept\n"), 0o644))
	o, err := parseColdStartFlags([]string{"--base", "HEAD", "--n", "2", "--out", out, "--tmp", t.TempDir()})
	require.NoError(t, err)
	o.log = testWriter{t}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	rep, err := runColdStart(ctx, o)
	require.NoError(t, err)

	require.Len(t, rep.builds, 2)
	for _, b := range rep.builds {
		assert.Len(t, b.initMs, 2, b.label)
		for _, ms := range b.initMs {
			assert.Greater(t, ms, 0.0, b.label)
		}
		assert.Positive(t, b.size, b.label)
		assert.Positive(t, b.sizeArm64, b.label)
		assert.Positive(t, b.modules, b.label)
		assert.Positive(t, b.packages, b.label)
	}
	md, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(md), "# Benchmarks\n\nkept\n"), string(md))
	assert.Contains(t, string(md), "## Lambda cold start")
	assert.Contains(t, string(md), "| base | ")
	assert.Contains(t, string(md), "| this tree | ")
	assert.Contains(t, string(md), "This tree against the base")
	left, err := os.ReadDir(o.tmp)
	require.NoError(t, err)
	assert.Empty(t, left, "the run's builds and spool directories are removed")
}

func TestColdStartBadBase(t *testing.T) {
	if testing.Short() {
		t.Skip("installs the Lambda emulator on first use")
	}
	o, err := parseColdStartFlags([]string{"--base", "no-such-revision", "--out", "", "--tmp", t.TempDir()})
	require.NoError(t, err)
	o.log = testWriter{t}
	_, err = runColdStart(t.Context(), o)
	require.ErrorContains(t, err, "git archive no-such-revision")
	left, err := os.ReadDir(o.tmp)
	require.NoError(t, err)
	assert.Empty(t, left)
}
