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

// TestMain lets the test binary serve as a reference server too, as the
// bench binary does: the harness starts those as copies of itself.
func TestMain(m *testing.M) {
	if isChild() {
		os.Exit(childMain())
	}
	os.Exit(m.Run())
}

// TestQuick runs the whole harness in --quick mode, in process, against a
// freshly built localserver, so that `make bench` keeps working: every case
// on every server must succeed and the report must show every row. It
// checks no figure; those are the report's business.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("builds localserver and uploads about 1 GiB; skipped in -short mode")
	}
	o, err := parseFlags([]string{"--quick", "--small-duration", "500ms", "--conns", "8"})
	if err != nil {
		t.Fatal(err)
	}
	o.out = filepath.Join(t.TempDir(), "BENCHMARKS.md")
	// The cold start section is written by `bench coldstart`; a full run
	// keeps it.
	kept := coldStartBegin + "\n## Lambda cold start\n" + coldStartEnd + "\n"
	if err := os.WriteFile(o.out, []byte("# old report\n\n"+kept), 0o644); err != nil {
		t.Fatal(err)
	}
	o.tmp = t.TempDir()
	o.noApt = true // a test installs no system package; nginx is skipped when missing
	o.log = testWriter{t}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	rep, err := run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rep.errors {
		t.Error(e)
	}
	// Every case ran on every server that takes part in it, but for the
	// peers that were skipped, each with its reason.
	require.Len(t, rep.cases, 2*len(o.large)+len(o.small)+3)
	for _, c := range rep.cases {
		want := 0
		for _, s := range servers {
			if s.runs(c, o.large[0]) && rep.peers.skipped[s.peer] == "" {
				want += o.reps
			}
		}
		assert.Len(t, rep.results[c.id], want, c.id)
		assert.Positive(t, want, c.id)
	}
	for peer, why := range rep.peers.skipped {
		t.Logf("skipped %s: %s", peer, why)
	}
	md, err := os.ReadFile(o.out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(md), "# old report") || !strings.HasSuffix(string(md), "\n\n"+kept) {
		t.Errorf("the report does not end with the cold start section it replaced:\n%s", md)
	}
	for _, want := range []string{"do not edit by hand", "## Goals", "raw 32 MiB", "multipart 128 MiB",
		"PUT 1 KiB ×8 conns", "| floor-fsync |", "| spillway-fsync |", "tus 32 MiB", "S3 32 MiB", "PUT 10 MiB ×64 at once",
		"## Lambda", "Machine: ", "Peers: ", "## Multipart completion on S3", " 0 bytes read from S3"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if entries, _ := os.ReadDir(o.tmp); len(entries) > 0 {
		t.Errorf("left behind in the temp dir: %v", entries)
	}
}

// TestS3Completion runs the S3 completion measurement once, small: it
// completes, and reads nothing back from S3.
func TestS3Completion(t *testing.T) {
	if testing.Short() {
		t.Skip("starts versitygw and uploads 64 MiB; skipped in -short mode")
	}
	c := runS3Completion(t.Context(), 64<<20, 1)
	if c.err != "" {
		t.Fatal(c.err)
	}
	md := c.markdown()
	t.Log(md)
	if c.read != 0 || !strings.Contains(md, "64 MiB upload") || !strings.Contains(md, " 0 bytes read from S3") {
		t.Errorf("report: %s", md)
	}
}

// TestDirCompletion runs the directory store's completion measurement
// once, small.
func TestDirCompletion(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 64 MiB; skipped in -short mode")
	}
	c := runDirCompletion(t.Context(), 64<<20, 1)
	if c.err != "" {
		t.Fatal(c.err)
	}
	md := c.markdown()
	t.Log(md)
	if len(c.times) != 1 || !strings.Contains(md, "64 MiB upload") {
		t.Errorf("report: %s", md)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"--quick"})
	if err != nil {
		t.Fatal(err)
	}
	if o.reps != 1 || o.goBench || o.large[1] != 128<<20 || o.smallFor != time.Second {
		t.Errorf("--quick gave %+v", o)
	}
	o, err = parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.reps != 3 || !o.goBench || o.large[0] != 1<<30 || o.large[1] != 4<<30 || o.conns != 32 || o.smallFor != 5*time.Second {
		t.Errorf("defaults gave %+v", o)
	}
	if !o.runsKind(kindTus) || len(o.cases) != 0 {
		t.Errorf("no --cases must run every kind, got %q", o.cases)
	}
	o, err = parseFlags([]string{"--cases", "multipart,load"})
	require.NoError(t, err)
	assert.True(t, o.runsKind(kindMultipart) && o.runsKind(kindLoad))
	assert.False(t, o.runsKind(kindRaw) || o.runsKind(kindS3) || o.runsKind(kindSmall) || o.runsKind(kindTus))
	for _, bad := range [][]string{{"--reps", "0"}, {"--conns", "1000"}, {"extra"}, {"--cases", "raw,nope"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestMarkedSectionsAreKept checks that a full run keeps every section
// another command or a person wrote between markers, and nothing else.
func TestMarkedSectionsAreKept(t *testing.T) {
	cold := coldStartBegin + "\n## Lambda cold start\nfigures\n" + coldStartEnd + "\n"
	hand := "<!-- tus-by-hand: measured by hand, see the issue -->\n## tus by hand\n<!-- /tus-by-hand -->\n"
	doc := "# Benchmarks\n\nold figures\n\n" + cold + "\nbetween\n" + hand + "<!-- broken: never closed -->\n"
	assert.Equal(t, []string{cold, hand}, markedSections(doc))
	assert.Empty(t, markedSections("# Benchmarks\n"))
}
