package client

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/crc64nvme"
	"golang.org/x/text/unicode/norm"

	"spillway/wire"
)

// ErrMismatch is returned, wrapped, when the server reports a file other
// than the one that was read: another SHA-256 or size.
var ErrMismatch = errors.New("the server stored other bytes than were sent")

// Stage is what a push is doing.
type Stage int

const (
	StageHash Stage = iota // reading the file for its SHA-256
	StageSend              // sending it
	StageDone              // the server has stored it
)

func (s Stage) String() string {
	switch s {
	case StageHash:
		return "hash"
	case StageSend:
		return "send"
	case StageDone:
		return "done"
	}
	return "Stage(" + strconv.Itoa(int(s)) + ")"
}

// Progress is how far one push has come.
type Progress struct {
	Path  string // the local file
	Name  string // its name on the server
	Size  int64
	Stage Stage
	// Bytes is how much of the file has been hashed (StageHash) or sent
	// (StageSend, StageDone). Parts an earlier run sent, when kept, count
	// as sent, and bytes of a failed attempt are taken back, so it can go
	// down.
	Bytes int64
}

// Result describes a pushed file.
type Result struct {
	Name   string // as the server stored it
	Size   int64
	SHA256 string // lower-case hex; the server's and the local one agree
	// CRC64NVME is the file's CRC-64/NVME as S3 writes it (base64 of the
	// big-endian bytes); the server's, when it reports one, agrees.
	CRC64NVME string
	Spool     wire.Spool // where the server held the body
	Multipart bool
	UploadID  string // the multipart upload's ID; "" for a direct PUT
	Resumed   bool   // parts an earlier run saw stored were kept, not sent again
	// Existing says the server already held these bytes (same size and
	// SHA-256) under the name: stored by an earlier run, or by one whose
	// completion was interrupted or lost, which the server finished.
	Existing bool
	Sent     int64 // bytes this run sent, retries included
	Elapsed  time.Duration
}

// Push sends the regular file at path to the server as name; an empty name
// means the file's base name. Files up to Options.DirectMax go with one
// PUT; larger ones in parts, resuming an upload that an earlier,
// interrupted push of the same file left. The server's SHA-256 is checked
// against the file's. A push stopped by ctx keeps its state for the next.
func (c *Client) Push(ctx context.Context, path, name string) (Result, error) {
	if name == "" {
		// macOS may hand out names decomposed (NFD); the server takes
		// only NFC.
		name = norm.NFC.String(filepath.Base(path))
	}
	res, err := c.push(ctx, path, name)
	if err != nil {
		return res, fmt.Errorf("push %s: %w", name, err)
	}
	return res, nil
}

func (c *Client) push(ctx context.Context, path, name string) (Result, error) {
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return Result{}, err
	}
	if !info.Mode().IsRegular() {
		return Result{}, fmt.Errorf("%s: not a regular file", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Result{}, err
	}
	rep := &reporter{fn: c.opts.Progress, p: Progress{Path: path, Name: name, Size: info.Size()}}
	defer rep.close()

	var res Result
	if size := info.Size(); size == 0 || (c.opts.DirectMax > 0 && size <= c.opts.DirectMax) {
		res, err = c.pushDirect(ctx, f, name, size, rep)
	} else {
		res, err = c.pushParts(ctx, f, abs, name, info, rep)
	}
	res.Elapsed = time.Since(start)
	if err == nil {
		rep.set(StageDone, info.Size())
	}
	return res, err
}

// pushDirect sends the file with one PUT /files/{name}. It hashes the file
// first: a signed request needs the hash up front, and a retry can reuse it.
func (c *Client) pushDirect(ctx context.Context, f *os.File, name string, size int64, rep *reporter) (Result, error) {
	res := Result{Name: name, Size: size}
	sum, crc, _, err := hashFile(ctx, f, size, 0, rep)
	if err != nil {
		return res, err
	}
	rep.set(StageSend, 0)
	target := c.route(nil, "files", name)
	var out wire.UploadResponse
	for attempt := 1; ; attempt++ {
		var n int64
		n, err = c.putFile(ctx, target, f, size, sum, rep, &out)
		res.Sent += n
		if err == nil {
			break
		}
		if isCode(err, http.StatusConflict, wire.CodeExists) {
			_, err = c.settleExists(ctx, &res, name, sum, err)
			return res, err
		}
		if attempt >= c.opts.Attempts || !retryable(ctx, err) {
			return res, err
		}
		if err := c.backoff(ctx, attempt, err); err != nil {
			return res, err
		}
	}
	return res, checkStored(&res, out, name, size, sum, crc)
}

func (c *Client) putFile(ctx context.Context, target string, f *os.File, size int64, sum string, rep *reporter, out *wire.UploadResponse) (int64, error) {
	// No GetBody: a transport that replayed the body by itself would
	// bypass the progress count; the retries here replay it instead.
	body := newProgressBody(io.NewSectionReader(f, 0, size), rep)
	req, err := c.apiRequest(ctx, http.MethodPut, target, body, size, sum)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.api.Do(req)
	if err != nil {
		return body.rollback(), err
	}
	defer drainClose(resp)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return body.rollback(), readError(resp)
	}
	if err := decodeJSON(resp, out); err != nil {
		// The file may well be stored: sending it again would only meet
		// 409 exists.
		return body.keep(), permanent{err}
	}
	return body.keep(), nil
}

// checkStored fills res from the server's answer and checks that it stored
// the bytes that were read: their SHA-256 and, when the server reports one
// (servers before it did not), their CRC64NVME. For a multipart upload to
// S3 the SHA-256 is the one this client declared (the answer says so in
// "declared"), and the CRC64NVME the one S3 verified.
func checkStored(res *Result, out wire.UploadResponse, name string, size int64, sum, crc string) error {
	if len(out.Files) != 1 {
		return fmt.Errorf("the server answered with %d files, want 1", len(out.Files))
	}
	got := out.Files[0]
	res.Name, res.Spool = got.Name, got.Spool
	res.SHA256, res.CRC64NVME = strings.ToLower(got.SHA256), crc
	if res.SHA256 != sum {
		return fmt.Errorf("%w: sha256 %s, the file's is %s", ErrMismatch, got.SHA256, sum)
	}
	if got.CRC64NVME != "" && got.CRC64NVME != crc {
		return fmt.Errorf("%w: crc64nvme %s, the file's is %s", ErrMismatch, got.CRC64NVME, crc)
	}
	if got.Size != size {
		return fmt.Errorf("%w: %d bytes, the file has %d", ErrMismatch, got.Size, size)
	}
	if got.Name == "" {
		res.Name = name
	}
	return nil
}

func decodeJSON(resp *http.Response, out any) error {
	if err := jsonDecode(resp.Body, out); err != nil {
		return fmt.Errorf("%s %s: decode %d response: %w", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, err)
	}
	return nil
}

// hashFile reads the file once for its SHA-256 (hex) and its CRC64NVME
// (S3's form: base64 of the big-endian bytes), in constant memory, and,
// when partSize is not 0, for the CRC64NVME of each part of partSize
// bytes.
//
// The SHA-256 is the slow part and cannot be split, so it runs alone on
// the calling goroutine while another reads ahead and computes the CRCs,
// which cost a small fraction of it: the read overlaps the hash, on a
// second core when there is one. The file is read into hashBuffers
// buffers of hashChunk bytes, handed back and forth, so memory stays at
// their size whatever the file's.
func hashFile(ctx context.Context, f *os.File, size, partSize int64, rep *reporter) (sum, crc string, parts []string, err error) {
	rep.set(StageHash, 0)
	free, full := make(chan []byte, hashBuffers), make(chan []byte, hashBuffers)
	for range hashBuffers {
		free <- make([]byte, hashChunk)
	}
	go func() {
		defer close(full)
		crc, parts, err = readAhead(ctx, f, size, partSize, free, full)
	}()
	// The reader ends by closing full, on an error too, so this loop ends
	// and no goroutine outlives the call; its results are set by then.
	h := sha256.New()
	var done int64
	for b := range full {
		h.Write(b)
		done += int64(len(b))
		rep.set(StageHash, done)
		free <- b[:cap(b)]
	}
	if err != nil {
		return "", "", nil, err
	}
	return hex.EncodeToString(h.Sum(nil)), crc, parts, nil
}

// The hash's read-ahead: enough buffers that the reader and the SHA-256
// need never wait for each other, of a size that reads well.
const (
	hashBuffers = 4
	hashChunk   = 1 << 20
)

// readAhead reads size bytes of f into buffers taken from free and passes
// them, filled, to full, returning the whole file's CRC64NVME and, when
// partSize is not 0, each part's.
func readAhead(ctx context.Context, f *os.File, size, partSize int64, free <-chan []byte, full chan<- []byte) (crc string, parts []string, err error) {
	ch, pc := crc64nvme.New(), crc64nvme.New()
	var done, inPart int64
	for done < size {
		// Checked first: a select with a buffer free as well would pick
		// either, and read on.
		if ctx.Err() != nil {
			return "", nil, context.Cause(ctx)
		}
		var buf []byte
		select {
		case <-ctx.Done():
			return "", nil, context.Cause(ctx)
		case buf = <-free:
		}
		b := buf[:min(int64(len(buf)), size-done)]
		n, err := f.ReadAt(b, done)
		if err == io.EOF && n < len(b) {
			return "", nil, fmt.Errorf("hash: read %d bytes, the file had %d: it changed while being read", done+int64(n), size)
		}
		if err != nil && err != io.EOF {
			return "", nil, fmt.Errorf("hash: %w", err)
		}
		ch.Write(b)
		for rest := b; partSize > 0 && len(rest) > 0; {
			k := min(int64(len(rest)), partSize-inPart)
			pc.Write(rest[:k])
			rest, inPart = rest[k:], inPart+k
			if inPart == partSize {
				parts = append(parts, base64.StdEncoding.EncodeToString(pc.Sum(nil)))
				pc.Reset()
				inPart = 0
			}
		}
		done += int64(len(b))
		// Never blocks: full has room for every buffer.
		full <- b
	}
	if inPart > 0 {
		parts = append(parts, base64.StdEncoding.EncodeToString(pc.Sum(nil)))
	}
	return base64.StdEncoding.EncodeToString(ch.Sum(nil)), parts, nil
}

// Part sizes as the server chooses them (store.PartSizeFor), which the
// client declares so that its part checksums match the server's cut.
const (
	defaultPartSize = 16 << 20
	maxPartCount    = 10000
)

// The part sizes servers take (S3's bounds), for Options.PartSize.
const (
	MinPartSize = 5 << 20
	MaxPartSize = 5 << 30
)

// partSizeFor is the default part size or, for files that would need more
// than maxPartCount parts, the smallest multiple of 1 MiB that fits them.
func partSizeFor(size int64) int64 {
	p := int64(defaultPartSize)
	if need := (size + maxPartCount - 1) / maxPartCount; need > p {
		p = (need + 1<<20 - 1) &^ (1<<20 - 1)
	}
	return p
}

// upload is a multipart upload as the server cut it.
type upload struct {
	id        string
	size      int64
	partSize  int64
	partCount int
	urls      *urlBook
}

func (u *upload) sizeOf(n int) int64 {
	if n < u.partCount {
		return u.partSize
	}
	return u.size - int64(u.partCount-1)*u.partSize
}

func (c *Client) newUpload(id string, size, partSize int64, partCount int) (*upload, error) {
	if id == "" || partSize <= 0 || partCount < 1 || int64(partCount) != (size+partSize-1)/partSize {
		return nil, fmt.Errorf("the server cut upload %q of %d bytes into %d parts of %d bytes, which do not fit", id, size, partCount, partSize)
	}
	return &upload{id: id, size: size, partSize: partSize, partCount: partCount,
		urls: &urlBook{c: c, id: id, count: partCount, urls: map[int]wire.PartURL{}, got: map[int]time.Time{}}}, nil
}

// pushParts sends a file too large for one request through the multipart
// contract: create (or resume), send the parts, complete.
func (c *Client) pushParts(ctx context.Context, f *os.File, abs, name string, info fs.FileInfo, rep *reporter) (Result, error) {
	size := info.Size()
	res := Result{Name: name, Size: size, Multipart: true}
	partSize := c.opts.PartSize
	if partSize <= 0 {
		partSize = partSizeFor(size)
	}
	sum, crc, partCRCs, err := hashFile(ctx, f, size, partSize, rep)
	if err != nil {
		return res, err
	}
	statePath := c.statePath(abs, name, info)

	var up *upload
	var received []wire.Part
	var stlog *stateLog
	sending := true // the parts are not all sent yet
	if st := loadState(statePath); st != nil {
		up, received, err = c.resume(ctx, st, statePath, name, size, sum)
		if errors.Is(err, errStoredAlready) {
			res.Existing, res.SHA256, res.UploadID = true, sum, st.ID
			return res, removeState(statePath)
		}
		if err != nil {
			return res, err
		}
		if up != nil {
			stlog = newStateLog(statePath, *st)
		}
	}
	if up == nil {
		var created wire.CreatedUpload
		err := c.doJSON(ctx, http.MethodPost, c.route(nil, "uploads"), wire.CreateUploadRequest{Name: name, Size: size, SHA256: sum, CRC64NVME: crc,
			PartSize: partSize, PartCRC64NVME: partCRCs}, http.StatusCreated, &created)
		if isCode(err, http.StatusConflict, wire.CodeExists) {
			_, err = c.settleExists(ctx, &res, name, sum, fmt.Errorf("create upload: %w", err))
			return res, err
		}
		if err != nil {
			return res, fmt.Errorf("create upload: %w", err)
		}
		if created.PartSize != partSize {
			return res, fmt.Errorf("create upload: the server cut the file into parts of %d bytes, not the %d declared", created.PartSize, partSize)
		}
		if up, err = c.newUpload(created.ID, size, created.PartSize, created.PartCount); err != nil {
			return res, err
		}
		up.urls.add(created.PartURLPage)
		stlog = newStateLog(statePath, state{Server: c.base.String(), Name: name, Path: abs, Size: size,
			ModTime: info.ModTime(), SHA256: sum, ID: up.id, Created: time.Now().UTC()})
		// Best effort: a state directory that cannot be written costs the
		// chance to resume, not the push.
		resumable := statePath != "" && stlog.save() == nil
		if !resumable {
			// No later run can resume this upload: if this one fails
			// before its completion, it drops the parts it sent rather
			// than leave them to the server's sweep. A failed completion
			// may yet have published the file, so it keeps them.
			defer func() {
				if sending {
					c.abandon(ctx, up.id)
				}
			}()
		}
	}
	res.UploadID = up.id

	// A complete that finds a part missing or stale leaves the upload as it
	// was; the parts the server then lists are the truth, so send the rest
	// and complete again, a bounded number of times.
	const rounds = 3
	var out wire.UploadResponse
	for round := 1; ; round++ {
		sending = true
		if round > 1 {
			st, err := c.status(ctx, up.id)
			if err != nil {
				return res, fmt.Errorf("upload %s: %w", up.id, err)
			}
			received = st.Received
		}
		etags, kept, sent, err := c.sendParts(ctx, f, up, received, stlog, rep)
		res.Sent += sent
		if round == 1 {
			res.Resumed = kept > 0
		}
		if err != nil {
			return res, fmt.Errorf("upload %s: %w", up.id, err)
		}
		sending = false
		parts := make([]wire.CompletePart, up.partCount)
		for i := range parts {
			parts[i] = wire.CompletePart{Number: i + 1, ETag: etags[i+1]}
		}
		err = c.doJSON(ctx, http.MethodPost, c.route(nil, "uploads", up.id, "complete"), wire.CompleteRequest{Parts: parts}, http.StatusCreated, &out)
		if err == nil {
			break
		}
		err = fmt.Errorf("complete upload %s: %w", up.id, err)
		switch {
		case isCode(err, http.StatusBadRequest, wire.CodeUploadMismatch) && round < rounds:
			continue
		case isCode(err, http.StatusBadRequest, wire.CodeBadChecksum):
			// The server has discarded the upload: there is nothing left
			// to resume.
			_ = removeState(statePath)
		case isCode(err, http.StatusConflict, ""), isCode(err, http.StatusNotFound, ""):
			// The upload is gone, perhaps published by an attempt whose
			// answer was lost: what is stored under the name now says.
			// The state goes only once that is known.
			known, serr := c.settleExists(ctx, &res, name, sum, err)
			if known {
				_ = removeState(statePath)
			}
			return res, serr
		}
		return res, err
	}
	if err := removeState(statePath); err != nil {
		return res, err
	}
	return res, checkStored(&res, out, name, size, sum, crc)
}

// abandonTimeout bounds the abort of an upload that a failed push drops.
const abandonTimeout = 10 * time.Second

// abandon aborts upload id, even when ctx is done (a push stopped by an
// interrupt). Best effort: the server sweeps abandoned uploads anyway.
func (c *Client) abandon(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abandonTimeout)
	defer cancel()
	_ = c.doJSON(ctx, http.MethodDelete, c.route(nil, "uploads", id), nil, http.StatusNoContent, nil)
}

// errStoredAlready says that the upload an earlier run left is gone and
// its file is stored: that run's completion went through.
var errStoredAlready = errors.New("stored already")

// resume returns the upload an earlier run left, with the parts the server
// has, or a nil upload when there is none to resume.
func (c *Client) resume(ctx context.Context, st *state, statePath, name string, size int64, sum string) (*upload, []wire.Part, error) {
	discard := func() {
		// Best effort: the server sweeps abandoned uploads anyway.
		_ = c.doJSON(ctx, http.MethodDelete, c.route(nil, "uploads", st.ID), nil, http.StatusNoContent, nil)
		_ = removeState(statePath)
	}
	if st.Name != name || st.Size != size || st.SHA256 != sum || st.Server != c.base.String() {
		// Same size and mtime but other bytes: the parts sent are stale.
		discard()
		return nil, nil, nil
	}
	status, err := c.status(ctx, st.ID)
	switch {
	case isCode(err, http.StatusNotFound, ""):
		// Completed (by a run stopped while the server finished it), or
		// aborted or expired: the file under the name tells which.
		same, err := c.checkStoredAs(ctx, name, sum)
		if same {
			return nil, nil, errStoredAlready
		}
		if err == nil || errors.As(err, new(*OtherFileError)) || errors.Is(err, errCannotCompare) {
			_ = removeState(statePath)
		}
		// Another file there, or one that cannot be compared, is for the
		// create that follows to meet.
		return nil, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("resume upload %s: %w", st.ID, err)
	case status.Size != size || status.Name != name || (status.SHA256 != "" && !strings.EqualFold(status.SHA256, sum)):
		discard()
		return nil, nil, nil
	}
	up, err := c.newUpload(st.ID, size, status.PartSize, status.PartCount)
	if err != nil {
		return nil, nil, err
	}
	return up, status.Received, nil
}

func (c *Client) status(ctx context.Context, id string) (wire.UploadState, error) {
	var st wire.UploadState
	err := c.doJSON(ctx, http.MethodGet, c.route(nil, "uploads", id), nil, http.StatusOK, &st)
	return st, err
}

// sendParts sends every part that cannot be kept as the server holds it,
// Parallel at a time, recording each one the storage confirms in stlog, and
// returns the ETags of all parts by number, the bytes kept and the bytes
// sent.
//
// A part the server lists is kept only if stlog has it confirmed (this
// client saw its PUT answered 2xx) with the ETag the server lists, at the
// size the upload's cut gives it. Any other listed part may be one whose
// body was cut off by an interrupt and that the storage kept anyway (as
// versitygw does, zero-padded), so it is sent again, which replaces it.
func (c *Client) sendParts(ctx context.Context, f *os.File, up *upload, received []wire.Part, stlog *stateLog, rep *reporter) (map[int]string, int64, int64, error) {
	listed := make(map[int]int, len(received))
	for _, p := range received {
		listed[p.Number]++
	}
	etags := make(map[int]string, up.partCount)
	var have int64
	for _, p := range received {
		if p.Number < 1 || p.Number > up.partCount || p.Size != up.sizeOf(p.Number) || p.ETag == "" || listed[p.Number] != 1 {
			continue
		}
		if mine, ok := stlog.confirmed(p.Number); ok && sameETag(mine, p.ETag) {
			etags[p.Number] = p.ETag
			have += p.Size
		}
	}
	// The parts about to be sent are not confirmed until they are again.
	stlog.keepOnly(func(n int) bool { _, ok := etags[n]; return ok })
	var todo []int
	for n := 1; n <= up.partCount; n++ {
		if _, ok := etags[n]; !ok {
			todo = append(todo, n)
		}
	}
	rep.set(StageSend, have)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu   sync.Mutex
		sent int64
		wg   sync.WaitGroup
		jobs = make(chan int)
	)
	for range min(c.opts.Parallel, len(todo)) {
		wg.Go(func() {
			for n := range jobs {
				etag, n64, err := c.sendPart(ctx, f, up, n, rep)
				if err == nil {
					stlog.confirm(n, etag)
				}
				mu.Lock()
				sent += n64
				if err == nil {
					etags[n] = etag
				}
				mu.Unlock()
				if err != nil {
					cancel(err)
					return
				}
			}
		})
	}
feed:
	for _, n := range todo {
		select {
		case jobs <- n:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if ctx.Err() != nil {
		return nil, have, sent, context.Cause(ctx)
	}
	return etags, have, sent, nil
}

// sameETag reports whether two ETags name the same part, quoted or not
// (the servers compare them so too).
func sameETag(a, b string) bool {
	return strings.Trim(a, `"`) == strings.Trim(b, `"`)
}

// maxRefreshes bounds the fresh URLs fetched for one part after 403s: a
// URL can expire once, but a part refused again and again is refused.
const maxRefreshes = 2

// sendPart sends part n, retrying failures with backoff and fetching a
// fresh URL when storage refuses the one it has (expired).
func (c *Client) sendPart(ctx context.Context, f *os.File, up *upload, n int, rep *reporter) (string, int64, error) {
	off, size := int64(n-1)*up.partSize, up.sizeOf(n)
	var sent int64
	refreshes := 0
	for attempt := 1; ; {
		pu, err := up.urls.get(ctx, n)
		if err == nil && pu.Size != size {
			return "", sent, fmt.Errorf("part %d: the server lists %d bytes, the upload's cut says %d", n, pu.Size, size)
		}
		var etag string
		if err == nil {
			var k int64
			etag, k, err = c.putPart(ctx, pu, f, off, size, rep)
			sent += k
			if err == nil {
				return etag, sent, nil
			}
			if isCode(err, http.StatusForbidden, "") && refreshes < maxRefreshes {
				refreshes++
				up.urls.forget(n, pu)
				continue
			}
		}
		if attempt >= c.opts.Attempts || !retryable(ctx, err) {
			return "", sent, fmt.Errorf("part %d: %w", n, err)
		}
		if err := c.backoff(ctx, attempt, err); err != nil {
			return "", sent, err
		}
		attempt++
	}
}

// putPart sends one part to its URL. It carries only the headers the
// server listed: part URLs are presigned or self-signed, and the API's
// credentials must never reach storage.
func (c *Client) putPart(ctx context.Context, pu wire.PartURL, f *os.File, off, size int64, rep *reporter) (string, int64, error) {
	ref, err := url.Parse(pu.URL)
	if err != nil {
		return "", 0, fmt.Errorf("part URL: %w", err)
	}
	method := pu.Method
	if method == "" {
		method = http.MethodPut
	}
	body := newProgressBody(io.NewSectionReader(f, off, size), rep)
	req, err := http.NewRequestWithContext(ctx, method, c.base.ResolveReference(ref).String(), body)
	if err != nil {
		return "", 0, err
	}
	req.ContentLength = size
	// Storage that refuses the part (an expired URL, a busy server) says
	// so before the body is sent.
	req.Header.Set("Expect", "100-continue")
	for k, v := range pu.Headers {
		switch {
		case strings.EqualFold(k, "Host"):
			req.Host = v
		case strings.EqualFold(k, "Content-Length"):
		default:
			req.Header.Set(k, v)
		}
	}
	resp, err := c.parts.Do(req)
	if err != nil {
		return "", body.rollback(), err
	}
	defer drainClose(resp)
	if resp.StatusCode/100 != 2 {
		return "", body.rollback(), readError(resp)
	}
	etag := resp.Header.Get("ETag")
	if etag == "" {
		return "", body.rollback(), fmt.Errorf("%s %s: %d without an ETag header", method, req.URL.Redacted(), resp.StatusCode)
	}
	return etag, body.keep(), nil
}

// urlExpiryMargin is how long before its expiry a part URL is renewed
// rather than used, since a part can take a while to send; for URLs that
// live only minutes, a quarter of their life.
const urlExpiryMargin = 2 * time.Minute

// urlBook holds the part URLs the server has handed out, fetching pages
// as parts need them, so that URLs for late parts of a long upload are
// fetched late, not an hour too early.
type urlBook struct {
	c     *Client
	id    string
	count int
	mu    sync.Mutex
	urls  map[int]wire.PartURL
	got   map[int]time.Time // when each URL was handed out
	next  int               // the next_from of the latest page
	last  int               // how many URLs the latest page held
}

// add records a page of URLs; callers hold mu or own b alone.
func (b *urlBook) add(page wire.PartURLPage) {
	b.next, b.last = page.NextFrom, len(page.Parts)
	now := time.Now()
	for _, p := range page.Parts {
		if p.Number >= 1 && p.Number <= b.count {
			b.urls[p.Number], b.got[p.Number] = p, now
		}
	}
}

// get returns a usable URL for part n. Workers wait for one another's page
// fetch, which is one request per page of parts.
func (b *urlBook) get(ctx context.Context, n int) (wire.PartURL, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.urls[n]; ok {
		margin := min(urlExpiryMargin, p.Expires.Sub(b.got[n])/4)
		if p.Expires.IsZero() || time.Until(p.Expires) > margin {
			return p, nil
		}
	}
	// Parts are taken in order but by several workers, so the part asked
	// for may be just past the one the next page starts at: fetch that
	// page then, rather than one that overlaps it.
	from := n
	if b.next != 0 && b.next < n && n < b.next+b.last {
		from = b.next
	}
	// A server may start its pages elsewhere than asked; next_from says
	// where the next one starts, so follow it until part n is covered.
	for pages := 0; from != 0 && from <= n && pages <= b.count; pages++ {
		var page wire.PartURLPage
		q := url.Values{"from": {strconv.Itoa(from)}}
		if err := b.c.doJSON(ctx, http.MethodGet, b.c.route(q, "uploads", b.id, "parts"), nil, http.StatusOK, &page); err != nil {
			return wire.PartURL{}, fmt.Errorf("part URLs from %d: %w", from, err)
		}
		b.add(page)
		if p, ok := b.urls[n]; ok && slices.ContainsFunc(page.Parts, func(p wire.PartURL) bool { return p.Number == n }) {
			return p, nil
		}
		from = page.NextFrom
	}
	return wire.PartURL{}, fmt.Errorf("the server listed no URL for part %d", n)
}

// forget drops used, a URL storage refused, unless another worker has
// already replaced it.
func (b *urlBook) forget(n int, used wire.PartURL) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.urls[n].URL == used.URL {
		delete(b.urls, n)
	}
}

// reporter serialises Progress calls and stops them when the push ends,
// since a transport may still read a body after Do has returned.
type reporter struct {
	mu     sync.Mutex
	fn     func(Progress)
	p      Progress
	closed bool
}

func (r *reporter) set(stage Stage, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p.Stage, r.p.Bytes = stage, n
	r.call()
}

func (r *reporter) add(n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p.Bytes += n
	r.call()
}

func (r *reporter) call() {
	if r.fn != nil && !r.closed {
		r.fn(r.p)
	}
}

func (r *reporter) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
}

// progressBody counts what the transport reads of one attempt's body, so
// that a failed attempt's bytes can be taken back.
type progressBody struct {
	r    io.Reader
	rep  *reporter
	mu   sync.Mutex
	n    int64
	done bool
}

func newProgressBody(r io.Reader, rep *reporter) *progressBody {
	return &progressBody{r: r, rep: rep}
}

func (b *progressBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.mu.Lock()
	if !b.done && n > 0 {
		b.n += int64(n)
		b.rep.add(int64(n))
	}
	b.mu.Unlock()
	return n, err
}

func (b *progressBody) Close() error { return nil }

// keep ends the count and returns the bytes read.
func (b *progressBody) keep() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = true
	return b.n
}

// rollback ends the count, takes its bytes back from the progress, and
// returns them (they were sent, if in vain).
func (b *progressBody) rollback() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.done = true
		b.rep.add(-b.n)
	}
	return b.n
}
