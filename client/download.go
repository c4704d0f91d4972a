package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// ErrChecksum is a download whose bytes do not have the SHA-256 asked for.
var ErrChecksum = errors.New("the downloaded bytes do not match the expected SHA-256")

// DownloadOptions tune one Download.
type DownloadOptions struct {
	// SHA256, when set (hex), is what the file's SHA-256 must be: a
	// download whose bytes differ is removed, and never gets dest's name.
	SHA256 string
}

// DownloadResult describes a downloaded file.
type DownloadResult struct {
	Name       string
	Size       int64
	SHA256     string // lower-case hex, of the bytes written to dest
	Resumed    int64  // bytes an earlier, interrupted download left and this one kept
	Received   int64  // bytes this download received, retries included
	Redirected bool   // the server sent the bytes' URL (S3's, presigned), and they came from there
	Elapsed    time.Duration
}

// partMeta is what a partial download records beside its bytes, in
// dest.part.json: enough to resume only the same file from the same server,
// and only while the server still holds the same version (If-Range).
type partMeta struct {
	Server string `json:"server"`
	Name   string `json:"name"`
	ETag   string `json:"etag"`
}

// PartPaths returns where a download to dest keeps its bytes and its
// record until it is complete.
func PartPaths(dest string) (part, meta string) {
	return dest + ".part", dest + ".part.json"
}

// Download fetches the stored file name into dest. The bytes go to
// dest.part first, which is renamed to dest only once whole (and, with
// opts.SHA256, checked): dest never holds a partial file. An interrupted
// download leaves dest.part and its record, and the next Download to the
// same dest resumes it with a Range request, if the server still has the
// same version of the file (If-Range on its ETag); otherwise it starts
// again. A redirect (S3's presigned URL) is followed without the client's
// credentials: the URL is its own.
func (c *Client) Download(ctx context.Context, name, dest string, opts DownloadOptions) (res DownloadResult, err error) {
	start := time.Now()
	res.Name = name
	want := strings.ToLower(opts.SHA256)
	part, metaPath := PartPaths(dest)
	meta := partMeta{Server: c.base.String(), Name: name}
	if b, err := os.ReadFile(metaPath); err == nil {
		var m partMeta
		if json.Unmarshal(b, &m) == nil && m.Server == meta.Server && m.Name == meta.Name {
			meta.ETag = m.ETag
		}
	}
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return res, fmt.Errorf("download %s: %w", name, err)
	}
	var have int64
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil && have == 0 {
			// Nothing worth resuming: leave nothing behind.
			os.Remove(part)
			os.Remove(metaPath)
		}
	}()

	// What is already there counts only with an ETag to resume it by; its
	// bytes are hashed again, since the SHA-256 covers the whole file.
	h := sha256.New()
	if meta.ETag != "" {
		if have, err = io.Copy(h, f); err != nil {
			return res, fmt.Errorf("download %s: read %s: %w", name, part, err)
		}
	}
	res.Resumed = have

	for attempt := 1; ; attempt++ {
		var total int64
		var n int64
		var redirected bool
		total, n, redirected, err = c.fetch(ctx, name, f, h, &have, &meta, metaPath)
		res.Received += n
		res.Redirected = res.Redirected || redirected
		// Bytes kept are those no attempt had to start again.
		res.Resumed = max(0, min(res.Resumed, have-res.Received))
		if err == nil {
			res.Size = total
			break
		}
		if attempt >= c.opts.Attempts || !retryable(ctx, err) {
			return res, fmt.Errorf("download %s: %w", name, err)
		}
		if err := c.backoff(ctx, attempt, err); err != nil {
			return res, fmt.Errorf("download %s: %w", name, err)
		}
	}
	if err := f.Sync(); err != nil {
		return res, fmt.Errorf("download %s: %w", name, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return res, fmt.Errorf("download %s: %w", name, err)
	}
	res.SHA256 = hex.EncodeToString(h.Sum(nil))
	if want != "" && want != res.SHA256 {
		// Wrong bytes are not worth resuming.
		os.Remove(part)
		os.Remove(metaPath)
		return res, fmt.Errorf("download %s: %w: got %s, want %s", name, ErrChecksum, res.SHA256, want)
	}
	if err := os.Rename(part, dest); err != nil {
		return res, fmt.Errorf("download %s: %w", name, err)
	}
	os.Remove(metaPath)
	res.Elapsed = time.Since(start)
	return res, nil
}

// fetch makes one attempt: it asks for the bytes after *have (all of them
// when *have is 0), appends them to f and h, and returns the file's size
// and the bytes received. *have and meta follow what f holds, so that a
// failed attempt leaves a state the next attempt, or the next run, resumes.
func (c *Client) fetch(ctx context.Context, name string, f *os.File, h hash.Hash, have *int64, meta *partMeta, metaPath string) (total, n int64, redirected bool, err error) {
	resp, redirected, err := c.get(ctx, name, *have, meta.ETag)
	if err != nil {
		return 0, 0, redirected, err
	}
	defer resp.Body.Close()
	total, n, err = receive(ctx, resp, f, h, have, meta, metaPath)
	return total, n, redirected, err
}

// receive appends what resp carries to f and h, as fetch describes.
func receive(ctx context.Context, resp *http.Response, f *os.File, h hash.Hash, have *int64, meta *partMeta, metaPath string) (total, n int64, err error) {

	restart := func() error {
		*have = 0
		h.Reset()
		if err := f.Truncate(0); err != nil {
			return permanent{err}
		}
		return nil
	}
	etag := resp.Header.Get("ETag")
	switch resp.StatusCode {
	case http.StatusPartialContent:
		first, _, size, ok := contentRange(resp.Header.Get("Content-Range"))
		if !ok || first != *have || (meta.ETag != "" && etag != "" && etag != meta.ETag) {
			// Not the rest of the bytes we hold: a server that ignored
			// If-Range, or a range it chose itself. Start again.
			if err := restart(); err != nil {
				return 0, 0, err
			}
			return 0, 0, errors.New("the server answered a range that does not continue the partial file; starting again")
		}
		total = size
	case http.StatusOK:
		if err := restart(); err != nil {
			return 0, 0, err
		}
		total = resp.ContentLength
	case http.StatusRequestedRangeNotSatisfiable:
		// The ETag matched (or If-Range would have given 200) and nothing
		// follows: the partial file is whole.
		if _, _, size, ok := contentRange(resp.Header.Get("Content-Range")); ok && size == *have {
			return size, 0, nil
		}
		if err := restart(); err != nil {
			return 0, 0, err
		}
		meta.ETag = ""
		return 0, 0, errors.New("the server holds less than the partial file; starting again")
	default:
		return 0, 0, readError(resp)
	}

	if etag != meta.ETag || *have == 0 {
		meta.ETag = etag
		if err := writeMeta(metaPath, *meta); err != nil {
			return 0, 0, permanent{err}
		}
	}
	if _, err := f.Seek(*have, io.SeekStart); err != nil {
		return 0, 0, permanent{err}
	}
	n, err = io.CopyBuffer(io.MultiWriter(f, h), resp.Body, make([]byte, 256<<10))
	*have += n
	if err != nil {
		if ctx.Err() != nil {
			return 0, n, context.Cause(ctx)
		}
		return 0, n, err
	}
	if total >= 0 && *have != total {
		return 0, n, fmt.Errorf("the body ended at byte %d of %d", *have, total)
	}
	return *have, n, nil
}

// get sends GET /files/{name}, for the bytes from offset on when offset is
// not 0, and follows a redirect to where the bytes are.
func (c *Client) get(ctx context.Context, name string, offset int64, etag string) (resp *http.Response, redirected bool, err error) {
	ranged := func(req *http.Request) {
		if offset > 0 {
			req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
			req.Header.Set("If-Range", etag)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.route(nil, "files", name), nil)
	if err != nil {
		return nil, false, err
	}
	ranged(req)
	if err := c.authorize(ctx, req, emptySHA256); err != nil {
		return nil, false, err
	}
	// The redirect is followed here, not by the http.Client: it would carry
	// the Authorization header (and a signature's X-Amz-* headers) to
	// another port of the same host, and the target needs none of them.
	api := *c.api
	api.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err = api.Do(req)
	if err != nil {
		return nil, false, err
	}
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
	default:
		return resp, false, nil
	}
	drainClose(resp)
	loc, err := resp.Location()
	if err != nil {
		return nil, true, permanent{fmt.Errorf("redirect %d without a usable Location: %w", resp.StatusCode, err)}
	}
	if req.URL.Scheme == "https" && loc.Scheme != "https" {
		return nil, true, permanent{fmt.Errorf("refusing a redirect from https to %s", redactQuery(loc))}
	}
	// Fresh headers: none of the server's credentials go along.
	target, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return nil, true, permanent{err}
	}
	ranged(target)
	resp, err = c.parts.Do(target)
	return resp, true, err
}

// redactQuery prints a URL without its query, which holds a presigned
// URL's signature.
func redactQuery(u *url.URL) string {
	v := *u
	v.RawQuery = ""
	return v.String()
}

// contentRange parses "bytes FIRST-LAST/SIZE" or "bytes */SIZE" (first and
// last are -1 then).
func contentRange(s string) (first, last, size int64, ok bool) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, 0, false
	}
	span, sz, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, false
	}
	size, err := strconv.ParseInt(sz, 10, 64)
	if err != nil {
		return 0, 0, 0, false
	}
	if span == "*" {
		return -1, -1, size, true
	}
	a, b, ok := strings.Cut(span, "-")
	if !ok {
		return 0, 0, 0, false
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || first > last || last >= size {
		return 0, 0, 0, false
	}
	return first, last, size, true
}

func writeMeta(path string, m partMeta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}
