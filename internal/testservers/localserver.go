package testservers

import (
	"bytes"
	"net/url"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Log is a program's output, safe for concurrent use, that wakes whoever
// waits for a line.
type Log struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	grew chan struct{} // closed, and replaced, at every write
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if l.grew != nil {
		close(l.grew)
		l.grew = nil
	}
	return len(p), nil
}

func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Tail is the last n bytes of the log at most.
func (l *Log) Tail(n int) string {
	s := l.String()
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// WaitCount waits up to d until re matches the log at least n times, as
// when a program logs a request after it has answered it. It gives up
// early when exited is closed.
func (l *Log) WaitCount(t testing.TB, re *regexp.Regexp, n int, d time.Duration, exited <-chan struct{}) {
	t.Helper()
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for {
		l.mu.Lock()
		got := len(re.FindAllStringIndex(l.buf.String(), -1))
		if l.grew == nil {
			l.grew = make(chan struct{})
		}
		grew := l.grew
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-grew:
		case <-exited:
			require.GreaterOrEqual(t, len(re.FindAllStringIndex(l.String(), -1)), n, "the program exited; log:\n%s", l.Tail(16<<10))
			return
		case <-timeout.C:
			require.FailNow(t, "timed out", "waiting %s for %d matches of %s, got %d; log:\n%s", d, n, re, got, l.Tail(16<<10))
		}
	}
}

// WaitFor waits up to d for re to match the log, and returns the match. It
// gives up early when exited is closed (the program is gone) without a
// match.
func (l *Log) WaitFor(t testing.TB, re *regexp.Regexp, d time.Duration, exited <-chan struct{}) []string {
	t.Helper()
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for {
		l.mu.Lock()
		m := re.FindStringSubmatch(l.buf.String())
		if l.grew == nil {
			l.grew = make(chan struct{})
		}
		grew := l.grew
		l.mu.Unlock()
		if m != nil {
			return m
		}
		select {
		case <-grew:
		case <-exited:
			if m := re.FindStringSubmatch(l.String()); m != nil {
				return m
			}
			require.FailNow(t, "the program exited", "waiting for %s; log:\n%s", re, l.Tail(16<<10))
		case <-timeout.C:
			require.FailNow(t, "timed out", "waiting %s for %s; log:\n%s", d, re, l.Tail(16<<10))
		}
	}
}

// Server is a program a test started, with its output.
type Server struct {
	*Process
	Log *Log
}

// Start starts cmd as StartProcess does, with its output in Log, or fails
// t. The program is killed when the test ends, if it still runs, and the
// tail of its output is logged when the test has failed.
func Start(t testing.TB, cmd *exec.Cmd, ready *regexp.Regexp) *Server {
	t.Helper()
	log := &Log{}
	p, err := StartProcess(t.Context(), cmd, Options{Ready: ready, Output: log})
	require.NoError(t, err)
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s output (tail):\n%s", cmd.Path, log.Tail(12<<10))
		}
	})
	return &Server{Process: p, Log: log}
}

// Term sends SIGTERM and fails t unless the program exits cleanly within d.
func (s *Server) Term(t testing.TB, d time.Duration) {
	t.Helper()
	require.NoError(t, s.Stop(d), "log:\n%s", s.Log.Tail(16<<10))
}

// LocalServerListening matches the line the local server logs once it
// accepts connections: its URL, and how many orphans it swept at start.
var LocalServerListening = regexp.MustCompile(`msg="spillway local server listening" url=(http://\S+) .*orphans_swept=(\d+)`)

// Local is a running localserver binary.
type Local struct {
	*Server
	Addr  string // host:port of URL
	Swept int    // orphans_swept from the start-up line
}

// StartLocalServer runs argv (the localserver binary, or a command line
// that ends by running it) on a free loopback port with args, in env,
// and waits until it listens. Nil env means CleanEnv.
func StartLocalServer(t testing.TB, env, argv []string, args ...string) *Local {
	t.Helper()
	if env == nil {
		env = CleanEnv()
	}
	rest := append(argv[1:len(argv):len(argv)], "--addr", "127.0.0.1:0")
	cmd := exec.Command(argv[0], append(rest, args...)...)
	cmd.Env = env
	r := &Local{Server: Start(t, cmd, LocalServerListening)}
	u, err := url.Parse(r.URL)
	require.NoError(t, err)
	r.Addr = u.Host
	r.Swept, err = strconv.Atoi(r.Ready[2])
	require.NoError(t, err)
	return r
}
