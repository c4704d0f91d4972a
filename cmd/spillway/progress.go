package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"spillway/client"
)

// ui shows how a push goes: one bar for all files on a terminal, otherwise
// (a log, CI) a line per file every few seconds and when it is done.
type ui struct {
	w     io.Writer
	quiet bool
	every time.Duration
	bar   *progressbar.ProgressBar // nil unless on a terminal

	mu        sync.Mutex
	done      int64 // bytes of the files already finished, for the bar
	name      string
	stage     client.Stage
	stageFrom time.Time // when the current file entered its stage
	sendFrom  time.Time // when it started sending: the rate leaves hashing out
	lastLine  time.Time
}

func newUI(w io.Writer, quiet, isTerm bool, every time.Duration, files []client.File) *ui {
	u := &ui{w: w, quiet: quiet, every: every}
	if quiet || !isTerm {
		return u
	}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	u.bar = progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetWidth(20),
		progressbar.OptionFullWidth(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
	return u
}

// progress is the client's Progress callback; the client calls it one call
// at a time.
func (u *ui) progress(p client.Progress) {
	if u.quiet {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	now := time.Now()
	if p.Name != u.name || p.Stage != u.stage {
		u.name, u.stage, u.stageFrom, u.lastLine = p.Name, p.Stage, now, now
		if p.Stage == client.StageSend {
			u.sendFrom = now
		}
		if u.bar != nil && p.Stage != client.StageDone {
			verb := "push"
			if p.Stage == client.StageHash {
				verb = "hash"
			}
			u.bar.Describe(verb + " " + shorten(p.Name, 30))
		}
	}
	if u.bar != nil {
		if p.Stage == client.StageSend {
			_ = u.bar.Set64(u.done + p.Bytes)
		}
		return
	}
	if p.Stage == client.StageDone || now.Sub(u.lastLine) < u.every {
		return
	}
	u.lastLine = now
	verb := "sending"
	if p.Stage == client.StageHash {
		verb = "hashing"
	}
	fmt.Fprintf(u.w, "%s %s: %s of %s (%s)\n", verb, p.Name, formatBytes(p.Bytes), formatBytes(p.Size),
		rate(p.Bytes, now.Sub(u.stageFrom)))
}

// fileDone reports one file's outcome; interrupted says the push was
// stopped on purpose, so the error is no failure.
func (u *ui) fileDone(f client.File, res client.Result, err error, interrupted bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.done += f.Size
	sending := time.Since(u.sendFrom)
	if u.sendFrom.IsZero() || u.name != res.Name {
		sending = res.Elapsed
	}
	u.name, u.sendFrom = "", time.Time{}
	var line string
	switch {
	case interrupted:
		line = fmt.Sprintf("interrupted %s", f.Path)
	case err != nil:
		line = fmt.Sprintf("FAILED %s: %v", f.Path, err)
	case u.quiet:
		return
	default:
		how := "direct"
		if res.Multipart {
			how = "multipart"
		}
		if res.Resumed {
			how += fmt.Sprintf(", resumed: %s sent now", formatBytes(res.Sent))
		}
		line = fmt.Sprintf("pushed %s: %s in %s, %s (%s) sha256 %s", res.Name, formatBytes(res.Size),
			res.Elapsed.Round(time.Millisecond), rate(res.Sent, sending), how, res.SHA256)
	}
	if u.bar == nil {
		fmt.Fprintln(u.w, line)
		return
	}
	_, _ = progressbar.Bprintln(u.bar, line)
	_ = u.bar.Set64(u.done)
}

// finish ends the bar, so that what follows starts on a line of its own.
func (u *ui) finish() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.bar != nil {
		_ = u.bar.Exit()
	}
}
