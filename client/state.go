package client

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
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
