package web_test

// Faults the test server plays: slow uplinks, answers rewritten, storage
// that refuses a part once, parts held back until a test lets them go.

import (
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// slowBodies makes the server read upload bodies at about rate bytes per
// second while on, as a slow uplink would, and tells reading when it
// starts on one. Throttling in the test's own server needs no DevTools
// network emulation, whose parameters change between Chromium releases.
// It needs smallBufferListener beside it.
type slowBodies struct {
	on      atomic.Bool
	rate    int
	reading chan struct{}
}

func (s *slowBodies) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.on.Load() && r.Method == http.MethodPut {
			r.Body = &slowReader{ReadCloser: r.Body, s: s}
		}
		next.ServeHTTP(w, r)
	})
}

// smallBufferListener listens on 127.0.0.1 with a small socket receive
// buffer, which the connections it accepts inherit. On loopback the kernel
// would otherwise take in a whole 4 MiB file at once, however slowly the
// server reads, and a cancel would come after the browser had sent it all.
// The browser's own send buffer still takes a part of the file at once.
func smallBufferListener(t *testing.T) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		}); err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return ln
}

// slowReader paces reads of an upload body, a tick's worth of bytes per
// tick, until its slowBodies is switched off: then the rest of a cancelled
// upload drains at once.
type slowReader struct {
	io.ReadCloser
	s *slowBodies
}

func (r *slowReader) Read(p []byte) (int, error) {
	const tick = 20 * time.Millisecond
	if r.s.on.Load() {
		select {
		case r.s.reading <- struct{}{}:
		default:
		}
		time.Sleep(tick) // pacing, not synchronisation: the rate is the point
		if n := r.s.rate * int(tick) / int(time.Second); len(p) > n {
			p = p[:n]
		}
	}
	return r.ReadCloser.Read(p)
}

// rewriteCreated lets edit change the body of POST /uploads's 201.
func rewriteCreated(t *testing.T, edit func(up map[string]any)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || r.URL.Path != "/uploads" {
				next.ServeHTTP(w, r)
				return
			}
			rw := httptest.NewRecorder()
			next.ServeHTTP(rw, r)
			body := rw.Body.Bytes()
			if rw.Code == http.StatusCreated {
				var up map[string]any
				if assert.NoError(t, json.Unmarshal(body, &up)) {
					edit(up)
					var err error
					body, err = json.Marshal(up)
					assert.NoError(t, err)
				}
			}
			maps.Copy(w.Header(), rw.Header())
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(rw.Code)
			w.Write(body)
		})
	}
}

// firstPageOfOne leaves one part URL in POST /uploads's answer, with
// next_from 2, so that the page fetches the others with GET
// /uploads/{id}/parts, as it must for a file of over 500 parts.
func firstPageOfOne(t *testing.T) func(http.Handler) http.Handler {
	return rewriteCreated(t, func(up map[string]any) {
		parts := up["parts"].([]any)
		if assert.Greater(t, len(parts), 1, "the test needs a file of several parts") {
			up["parts"], up["next_from"] = parts[:1], 2
		}
	})
}

// storageHiccup answers the first PUT of part n as S3 answers a client it
// asks to slow down: 503, in XML.
func storageHiccup(n int) func(http.Handler) http.Handler {
	var once sync.Once
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m := partURLPath.FindStringSubmatch(r.URL.EscapedPath())
			refuse := false
			if m != nil && r.Method == http.MethodPut && m[1] == strconv.Itoa(n) {
				once.Do(func() { refuse = true })
			}
			if !refuse {
				next.ServeHTTP(w, r)
				return
			}
			io.Copy(io.Discard, r.Body) // the browser sends it all before it reads the answer
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
				`<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>TESTREQUESTID</RequestId></Error>`)
		})
	}
}

// partGate holds every part PUT until the test opens it, and tells the
// test when each arrives.
type partGate struct {
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
	held    sync.WaitGroup // the part PUTs the gate has seen, until served
}

func (g *partGate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && partURLPath.MatchString(r.URL.EscapedPath()) {
			g.held.Add(1)
			defer g.held.Done()
			select {
			case g.arrived <- struct{}{}:
			default:
			}
			<-g.release
		}
		next.ServeHTTP(w, r)
	})
}

func (g *partGate) open() { g.once.Do(func() { close(g.release) }) }

// damagePart flips a byte of part n's body on its way to storage, as a
// faulty link would, in the first times PUTs of it (every one when times
// is negative). The length stays, so only a checksum tells.
type damagePart struct {
	n     string
	mu    sync.Mutex
	times int
}

func (d *damagePart) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n, ok := partOf(r.Method, r.URL.EscapedPath(), r.URL.RawQuery); ok && n == d.n && d.take() {
			r.Body = &flipReader{ReadCloser: r.Body, at: 4321}
		}
		next.ServeHTTP(w, r)
	})
}

func (d *damagePart) take() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.times == 0 {
		return false
	}
	d.times--
	return true
}

// flipReader flips the bits of one byte of what it reads, the byte at
// offset at.
type flipReader struct {
	io.ReadCloser
	at, off int64
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	if i := f.at - f.off; i >= 0 && i < int64(n) {
		p[i] ^= 0xFF
	}
	f.off += int64(n)
	return n, err
}
