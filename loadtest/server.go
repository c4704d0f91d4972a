package main

import (
	"context"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"spillway/internal/bytesize"
	"spillway/internal/testservers"
)

// server is a started localserver, and what it has logged.
type server struct {
	*testservers.Process

	mu sync.Mutex
	sl ServerLog
}

// startServer starts the binary on a free loopback port and reads its URL
// from the listening line. The SPILLWAY_* environment is not passed on, so
// only the flags given here configure it.
func startServer(ctx context.Context, cfg config, dir, spoolDir string) (*server, error) {
	args := []string{
		"--addr", "127.0.0.1:0",
		"--directory", dir,
		"--spool-dir", spoolDir,
		"--fsync=" + strconv.FormatBool(cfg.Fsync),
		"--memory-budget", bytesize.Format(cfg.MemoryBudget),
	}
	cmd := exec.Command(cfg.Server, append(args, cfg.ServerArgs...)...)
	cmd.Env = testservers.CleanEnv()
	s := &server{}
	p, err := testservers.StartProcess(ctx, cmd, testservers.Options{Ready: testservers.LocalServerListening, Output: s})
	if err != nil {
		return nil, err
	}
	s.Process = p
	return s, nil
}

// Write takes one line of the server's log, and counts it.
func (s *server) Write(p []byte) (int, error) {
	line := strings.TrimSuffix(string(p), "\n")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sl.Lines++
	level := logField(line, "level")
	if level == "WARN" || level == "ERROR" {
		if level == "WARN" {
			s.sl.Warn++
		} else {
			s.sl.Error++
		}
		s.sl.Tail = append(s.sl.Tail, line)
		if len(s.sl.Tail) > 10 {
			s.sl.Tail = s.sl.Tail[1:]
		}
	}
	if logField(line, "msg") == "stopped" {
		s.sl.Stopped = line
	}
	return len(p), nil
}

func (s *server) log() ServerLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.sl
	l.Tail = slices.Clone(l.Tail)
	return l
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() error { return s.Stop(2 * time.Minute) }

// logField returns the value of key=value in a slog text line.
func logField(line, key string) string {
	i := strings.Index(" "+line, " "+key+"=")
	if i < 0 {
		return ""
	}
	rest := line[i+len(key)+1:]
	if strings.HasPrefix(rest, `"`) {
		if v, err := strconv.QuotedPrefix(rest); err == nil {
			u, _ := strconv.Unquote(v)
			return u
		}
	}
	v, _, _ := strings.Cut(rest, " ")
	return v
}
