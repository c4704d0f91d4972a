package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"golang.org/x/term"

	"spillway/client"
)

// redrawEvery bounds how often the status line is drawn on a terminal.
const redrawEvery = 100 * time.Millisecond

// ui shows how a push goes, in one unit (IEC bytes, MiB/s) throughout: on
// a terminal, one status line redrawn in place; otherwise (a log, CI, a
// pipe) the same status as a plain line every few seconds. Either way, a
// line per file when it is done. Bytes count what the server holds or is
// receiving: finished files, parts kept from an earlier run and bytes sent;
// a file that fails or is interrupted counts only what it had sent, so
// that the status says where a push stopped.
type ui struct {
	w      io.Writer
	quiet  bool
	isTerm bool
	width  int
	every  time.Duration

	mu        sync.Mutex
	files     int   // files to push
	filesDone int   // pushed or already there
	total     int64 // bytes of all files
	done      int64 // bytes of the files pushed or already there
	active    map[string]*filePush
	start     time.Time
	sendFrom  time.Time // when the first byte was sent, for the rate
	sent      int64     // bytes sent by this run, of finished files
	lastDraw  time.Time
	lastLine  time.Time
	drawn     bool // a status line is on the terminal, without a newline
}

// filePush is one file in flight.
type filePush struct {
	p        client.Progress
	base     int64 // bytes held when sending began: parts kept from an earlier run
	sendFrom time.Time
}

func (f *filePush) held() int64 {
	if f.p.Stage == client.StageHash {
		return 0
	}
	return f.p.Bytes
}

func (f *filePush) sentNow() int64 {
	if f.p.Stage == client.StageHash {
		return 0
	}
	return max(f.p.Bytes-f.base, 0)
}

func newUI(w io.Writer, quiet, isTerm bool, every time.Duration, files []client.File) *ui {
	u := &ui{w: w, quiet: quiet, isTerm: isTerm, every: every, files: len(files),
		active: map[string]*filePush{}, start: time.Now(), lastLine: time.Now(), width: 80}
	for _, f := range files {
		u.total += f.Size
	}
	if f, ok := w.(*os.File); ok && isTerm {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 20 {
			u.width = cols
		}
	}
	return u
}

// progress is the client's Progress callback. Each push calls it one call
// at a time; pushes running at once (--jobs) call it concurrently.
func (u *ui) progress(p client.Progress) {
	if u.quiet {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	now := time.Now()
	f := u.active[p.Name]
	if f == nil {
		f = &filePush{}
		u.active[p.Name] = f
	}
	if p.Stage == client.StageSend && f.p.Stage != client.StageSend {
		f.base, f.sendFrom = p.Bytes, now
		if u.sendFrom.IsZero() {
			u.sendFrom = now
		}
	}
	f.p = p
	if u.isTerm {
		if now.Sub(u.lastDraw) >= redrawEvery {
			u.draw(now)
		}
		return
	}
	if now.Sub(u.lastLine) >= u.every {
		u.lastLine = now
		fmt.Fprintln(u.w, u.status(now))
	}
}

// status is one line: files and bytes done of the totals, the rate, and
// the files in flight.
func (u *ui) status(now time.Time) string {
	held, sent := u.done, u.sent
	names := make([]string, 0, len(u.active))
	for name, f := range u.active {
		held += f.held()
		sent += f.sentNow()
		names = append(names, name)
	}
	sort.Strings(names)
	s := fmt.Sprintf("%d/%d files, %s of %s", u.filesDone, u.files, formatBytes(held), formatBytes(u.total))
	if u.total > 0 {
		s += fmt.Sprintf(" (%d%%)", held*100/u.total)
	}
	if !u.sendFrom.IsZero() {
		s += ", " + rate(sent, now.Sub(u.sendFrom))
	}
	for _, name := range names {
		f := u.active[name]
		verb := "sending"
		if f.p.Stage == client.StageHash {
			verb = "hashing"
		}
		s += fmt.Sprintf("; %s %s %s of %s", verb, shorten(name, 30), formatBytes(f.p.Bytes), formatBytes(f.p.Size))
	}
	return s
}

// draw writes the status line over the last one; u.mu is held.
func (u *ui) draw(now time.Time) {
	u.lastDraw = now
	line := []rune(u.status(now))
	if len(line) > u.width-1 {
		line = append(line[:u.width-2], '…')
	}
	fmt.Fprintf(u.w, "\r%s\x1b[K", string(line))
	u.drawn = true
}

// println writes a line above the status line; u.mu is held.
func (u *ui) println(line string) {
	if u.drawn {
		fmt.Fprint(u.w, "\r\x1b[K")
		u.drawn = false
	}
	fmt.Fprintln(u.w, line)
	if u.isTerm {
		u.draw(time.Now())
	}
}

// fileDone reports one file's outcome; interrupted says the push was
// stopped on purpose, so the error is no failure.
func (u *ui) fileDone(f client.File, res client.Result, err error, interrupted bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	fp := u.active[f.Name]
	delete(u.active, f.Name)
	var sentNow int64
	var sending time.Duration
	if fp != nil {
		sentNow = fp.sentNow()
		if !fp.sendFrom.IsZero() {
			sending = time.Since(fp.sendFrom)
		}
	}
	if err == nil {
		u.filesDone++
		u.done += f.Size
		u.sent += res.Sent
	} else if fp != nil {
		// Bytes that reached the server stay counted as sent, not as
		// held: the file is not done.
		u.sent += sentNow
	}
	if sending <= 0 {
		sending = res.Elapsed
	}
	var line string
	switch {
	case interrupted:
		held := int64(0)
		if fp != nil {
			held = fp.held()
		}
		line = fmt.Sprintf("interrupted %s at %s of %s", f.Path, formatBytes(held), formatBytes(f.Size))
	case err != nil:
		line = fmt.Sprintf("FAILED %s: %v", f.Path, err)
		if errors.As(err, new(*client.OtherFileError)) {
			line += "\n  push this file under another name (--name, --prefix), remove the stored one first, or start the server with --overwrite where it allows that"
		}
	case u.quiet:
		return
	case res.Existing:
		line = fmt.Sprintf("already there %s: %s, the same size and SHA-256 on the server (sha256 %s)", res.Name, formatBytes(res.Size), res.SHA256)
	default:
		how := "direct"
		if res.Multipart {
			how = "multipart"
		}
		switch {
		case res.Resumed && res.Sent == 0:
			how += ", resumed: nothing left to send"
		case res.Resumed:
			how += fmt.Sprintf(", resumed: %s sent now", formatBytes(res.Sent))
		}
		line = fmt.Sprintf("pushed %s: %s in %s, %s (%s) sha256 %s", res.Name, formatBytes(res.Size),
			res.Elapsed.Round(time.Millisecond), rate(res.Sent, sending), how, res.SHA256)
	}
	u.println(line)
}

// finish leaves the status where the push stopped, on a line of its own,
// so that what follows starts on a fresh line.
func (u *ui) finish() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.quiet || !u.isTerm {
		return
	}
	u.draw(time.Now())
	fmt.Fprintln(u.w)
	u.drawn = false
}
