package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"spillway/internal/uploadtest"
	"spillway/wire"
)

// do sends one request, then verifies and deletes what it stored.
func (lt *loadTest) do(ctx context.Context, up *upload) {
	body, closed, req, err := lt.request(ctx, up)
	if err != nil {
		lt.record(up, 0, 0, nil, fmt.Errorf("building the request: %w", err))
		return
	}
	start := time.Now()
	resp, err := lt.client.Do(req)
	if err != nil {
		body.Close()
		lt.record(up, 0, 0, nil, err)
		return
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	latency := time.Since(start)
	if err != nil {
		lt.record(up, 0, 0, nil, fmt.Errorf("reading the answer: %w", err))
		return
	}
	if resp.StatusCode != http.StatusCreated {
		lt.record(up, resp.StatusCode, latency, nil, fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, strings.TrimSpace(string(raw))))
		return
	}
	// The transport may still be finishing with the body in its own
	// goroutine; the hashes are complete once it has closed it.
	select {
	case <-closed:
	case <-time.After(time.Minute):
		lt.record(up, resp.StatusCode, latency, []string{"request body never closed by the transport"}, nil)
		return
	}
	lt.record(up, resp.StatusCode, latency, lt.verify(up, raw), nil)
}

// request builds the HTTP request for up. The returned channel is closed
// when the transport closes the body.
func (lt *loadTest) request(ctx context.Context, up *upload) (io.Closer, <-chan struct{}, *http.Request, error) {
	for _, f := range up.files {
		f.body = newPayload(f.seed, f.size)
	}
	var (
		r      io.Reader
		length int64
		method = http.MethodPut
		target = lt.base + "/files/"
		ctype  string
	)
	switch up.kind {
	case kindRaw, kindChunked:
		f := up.files[0]
		r, length = f.body, f.size
		target += (&url.URL{Path: f.name}).EscapedPath()
		if up.kind == kindChunked {
			length = -1
		}
	case kindMultipart:
		method, target = http.MethodPost, lt.base+"/files"
		ctype, r, length = multipartBody(up)
	}
	body := &closeNotifier{r: r, closed: make(chan struct{})}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, nil, nil, err
	}
	req.ContentLength = length
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	req.Header.Set("Content-Type", ctype)
	if lt.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+lt.cfg.Token)
	}
	return body, body.closed, req, nil
}

// multipartBody streams up's files as multipart/form-data with an exact
// length. Sometimes a plain form field, which the server ignores, comes
// first.
func multipartBody(up *upload) (ctype string, body io.Reader, length int64) {
	form := uploadtest.Form{Note: up.files[0].seed%2 == 0}
	for i, f := range up.files {
		form.Parts = append(form.Parts, uploadtest.Part{Field: fmt.Sprintf("file%d", i+1), Name: f.name, Body: f.body, Size: f.size})
	}
	return form.Body()
}

// closeNotifier is a request body that tells when the transport is done
// with it.
type closeNotifier struct {
	r      io.Reader
	once   sync.Once
	closed chan struct{}
}

func (c *closeNotifier) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *closeNotifier) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// payload yields a file's bytes, generated from its seed, and hashes them
// as they are read.
type payload struct {
	r    io.Reader
	left int64
	h    hash.Hash
}

func newPayload(seed uint64, size int64) *payload {
	return &payload{r: uploadtest.File{Seed: seed, Size: size}.Reader(), left: size, h: sha256.New()}
}

func (p *payload) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.h.Write(b[:n])
	p.left -= int64(n)
	return n, err
}

// sum returns the hex SHA-256 of the bytes read, or "" when not all were.
func (p *payload) sum() string {
	if p.left != 0 {
		return ""
	}
	return hex.EncodeToString(p.h.Sum(nil))
}

// verify checks a 201's answer and the stored files against what was sent,
// and deletes the files. It returns what was wrong.
func (lt *loadTest) verify(up *upload, raw []byte) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var resp wire.UploadResponse
	if err := json.Unmarshal(raw, &resp); err != nil {
		bad("%s: 201 with a body that is not JSON: %v: %.200q", up.files[0].name, err, raw)
	}
	answered := map[string]int{}
	for i, f := range resp.Files {
		answered[f.Name] = i
	}
	if len(resp.Files) != len(up.files) {
		bad("%s: sent %d files, the 201 lists %d", up.kind, len(up.files), len(resp.Files))
	}
	for _, f := range up.files {
		want := f.body.sum()
		i, ok := answered[f.name]
		switch {
		case want == "":
			bad("%s: 201 although the client did not send all %d bytes", f.name, f.size)
		case !ok:
			bad("%s: missing from the 201's file list", f.name)
		case resp.Files[i].Size != f.size:
			bad("%s: sent %d bytes, the 201 says %d", f.name, f.size, resp.Files[i].Size)
		case resp.Files[i].SHA256 != want:
			bad("%s: sha256 sent %s, the 201 says %s", f.name, want, resp.Files[i].SHA256)
		}
		if ok {
			lt.mu.Lock()
			lt.sum.BySpool[string(resp.Files[i].Spool)]++
			lt.mu.Unlock()
		}
		path := filepath.Join(lt.dir, filepath.FromSlash(f.name))
		got, n, err := uploadtest.HashFile(path)
		switch {
		case err != nil:
			bad("%s: reading the stored file: %v", f.name, err)
		case n != f.size:
			bad("%s: sent %d bytes, stored %d", f.name, f.size, n)
		case got != want:
			bad("%s: sha256 sent %s, stored file has %s", f.name, want, got)
		}
		if err == nil {
			if err := os.Remove(path); err != nil {
				bad("%s: deleting the verified file: %v", f.name, err)
			}
		}
	}
	return problems
}

// record adds one request's outcome to the summary. status is 0 when there
// was no HTTP answer.
func (lt *loadTest) record(up *upload, status int, latency time.Duration, problems []string, reqErr error) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	s := lt.sum
	s.Requests++
	s.BytesSent += up.total
	k := s.ByKind[up.kind]
	k.Requests++
	sample := func(msg string) {
		if len(s.Samples) < 10 {
			s.Samples = append(s.Samples, msg)
		}
	}
	switch {
	case status == 0:
		s.TransportErrors++
		sample(fmt.Sprintf("%s %s: %v", up.kind, up.files[0].name, reqErr))
		return
	case status >= 500:
		s.Status5xx++
	case status != http.StatusCreated:
		s.OtherStatus++
	}
	s.ByStatus[status]++
	lt.latencies = append(lt.latencies, latency)
	if reqErr != nil {
		sample(reqErr.Error())
	}
	if status != http.StatusCreated {
		return
	}
	k.Created++
	k.Files += len(up.files)
	s.BytesStored += up.total
	s.FilesVerified += len(up.files)
	if len(problems) > 0 {
		s.VerifyFailures++
		for _, p := range problems {
			sample("verify: " + p)
		}
	}
}

// newClient is an HTTP client that dials loopback addresses only and keeps
// one idle connection per client.
func newClient(clients int) *http.Client {
	dialer := &net.Dialer{
		Timeout: 10 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil || !isLoopbackIP(host) {
				return fmt.Errorf("loadtest dials loopback only, not %s", address)
			}
			return nil
		},
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dialer.DialContext,
			MaxIdleConns:        clients,
			MaxIdleConnsPerHost: clients,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func healthz(ctx context.Context, client *http.Client, base string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("server not reachable: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /healthz: %s", resp.Status)
	}
	return nil
}
