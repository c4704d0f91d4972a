package client

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
)

// state is what a run remembers of a multipart upload it has not finished,
// so that the next run of the same push resumes it.
type state struct {
	Server  string    `json:"server"`
	Name    string    `json:"name"`
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	SHA256  string    `json:"sha256"`
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	// Confirmed are the parts this client saw stored: their PUT answered
	// 2xx with an ETag. Only those may be skipped on resume, and only
	// while the server still lists them with that ETag: a store can list
	// a part whose body was cut off (versitygw keeps it, zero-padded), and
	// a part in flight when the client was stopped or killed is not here.
	// A state written before this field existed confirms nothing.
	Confirmed []confirmedPart `json:"confirmed,omitempty"`
}

// confirmedPart is a part the storage answered 2xx for, and its ETag.
type confirmedPart struct {
	N    int    `json:"n"`
	ETag string `json:"etag"`
}

// stateLog keeps an upload's state file in step with the parts confirmed,
// one small atomic write per change, so that a client killed at any point
// leaves a file that confirms only parts it saw stored.
type stateLog struct {
	path string
	mu   sync.Mutex
	st   state
	etag map[int]string // st.Confirmed, by part number
}

func newStateLog(path string, st state) *stateLog {
	l := &stateLog{path: path, st: st, etag: map[int]string{}}
	for _, p := range st.Confirmed {
		if p.N >= 1 && p.ETag != "" {
			l.etag[p.N] = p.ETag
		}
	}
	l.st.Confirmed = nil
	return l
}

// confirmed returns the ETag part n was confirmed with, if it was.
func (l *stateLog) confirmed(n int) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.etag[n]
	return e, ok
}

// confirm records that the storage stored part n with this ETag.
func (l *stateLog) confirm(n int, etag string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.etag[n] == etag {
		return
	}
	l.etag[n] = etag
	// A write that fails leaves the older state, which confirms less.
	_ = l.saveLocked()
}

// keepOnly drops every confirmation but those of the parts in keep, before
// the others are sent (again): a part being replaced is not confirmed
// until its new PUT is.
func (l *stateLog) keepOnly(keep func(n int) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	dropped := false
	for n := range l.etag {
		if !keep(n) {
			delete(l.etag, n)
			dropped = true
		}
	}
	if dropped && l.saveLocked() != nil {
		// The file on disk may still confirm a part about to be replaced:
		// better no state (the next run starts over) than that one.
		_ = removeState(l.path)
	}
}

// save writes the state as it is.
func (l *stateLog) save() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.saveLocked()
}

// saveLocked writes the state; l.mu is held. Writes are serialised by
// l.mu, so the file never goes back to an older set of confirmations than
// one already written. Callers treat a failure as best effort: a state
// that cannot be written costs the chance to resume (or to skip parts),
// not the push.
func (l *stateLog) saveLocked() error {
	st := l.st
	st.Confirmed = make([]confirmedPart, 0, len(l.etag))
	for _, n := range slices.Sorted(maps.Keys(l.etag)) {
		st.Confirmed = append(st.Confirmed, confirmedPart{N: n, ETag: l.etag[n]})
	}
	return saveState(l.path, &st)
}

// statePath returns where the state of pushing this file, as it is now, to
// this name lives. A file that changed size or mtime gets another key, so
// its stale upload is never resumed (the server's sweep removes it).
func (c *Client) statePath(abs, name string, info fs.FileInfo) string {
	if c.stateDir == "" {
		return ""
	}
	h := sha256.New()
	for _, s := range []string{c.base.String(), name, abs, strconv.FormatInt(info.Size(), 10),
		strconv.FormatInt(info.ModTime().UnixNano(), 10)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return filepath.Join(c.stateDir, hex.EncodeToString(h.Sum(nil))[:32]+".json")
}

// loadState returns the state at path, or nil when there is none or it is
// unreadable (an unreadable one is only a lost chance to resume).
func loadState(path string) *state {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var s state
	if json.Unmarshal(b, &s) != nil || s.ID == "" {
		return nil
	}
	return &s
}

// saveState writes s atomically, so that a run killed while writing leaves
// the old state or the new one, never half of one.
func saveState(path string, s *state) error {
	if path == "" {
		return nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".state-*")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

func removeState(path string) error {
	if path == "" {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}
