package dirstore

// Multipart uploads live under uploadsDir, one directory per upload, named
// by its ID:
//
//	.spillway-uploads/{id}/upload.json   the declaration (manifest)
//	.spillway-uploads/{id}/data          the file, preallocated; part n at (n-1)*PartSize
//	.spillway-uploads/{id}/00001-{etag}  an empty marker: part 1 is in data, with that ETag
//	.spillway-uploads/{id}/prefix        the running hash of the parts received (inplace.go)
//
// A marker is made only once its part's bytes are written (and synced,
// with Fsync), and removed before they are written again, so a crash in
// between loses the part, which the client sends again, and never makes
// other bytes look received. Completion links data into place.
//
// Stored names never begin with a dot, so uploadsDir never collides with a
// file, and List and the staging sweep skip it. An upload exists exactly
// while its manifest does. The manifest's flock is the upload's lock: held
// shared to list parts, exclusively to write a part, complete, abort or
// sweep. Removing an upload unlinks its manifest first, under the lock, so
// whoever was waiting for the lock finds it gone.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"spillway/store"
)

var (
	_ store.Multipart  = (*Store)(nil)
	_ store.PartWriter = (*Store)(nil)
)

// DefaultUploadTTL is how long an idle multipart upload is kept when
// Options.UploadTTL is zero.
const DefaultUploadTTL = 24 * time.Hour

const (
	uploadsDir   = ".spillway-uploads"
	manifestName = "upload.json"
	// maxManifest bounds what is read of a manifest: a name is at most
	// MaxNameLen bytes, and a damaged file must not cost memory.
	maxManifest = 16 << 10
	// etagLen is how many hex digits of a part's SHA-256 make its ETag:
	// 128 bits, as many as S3's MD5 ETags carry.
	etagLen = 32
	// partNameLen is len("00001-") plus the ETag.
	partNameLen = 6 + etagLen
	// copyBuffer is the one buffer a copied body, or a part hashed from
	// the upload's file, goes through: large enough that a write costs
	// few system calls, small enough to stay far below the memory budget.
	copyBuffer = 1 << 20
)

// errDamaged marks a manifest that cannot be read back: the sweep removes
// such an upload once it is old enough.
var errDamaged = errors.New("damaged manifest")

func notFound(id string) error {
	if !store.ValidUploadID(id) {
		// Hostile IDs are not echoed into logs.
		return fmt.Errorf("%w: malformed ID", store.ErrUploadNotFound)
	}
	return fmt.Errorf("%w: %s", store.ErrUploadNotFound, id)
}

// manifest is the declaration of an upload as stored; the ID is its
// directory's name.
type manifest struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	// CRC64NVME in store.EncodeCRC64NVME's form; "" when none was
	// declared.
	CRC64NVME string `json:"crc64nvme,omitempty"`
	// PartCRC64NVME are the parts' declared checksums, which the handler
	// checks as each part arrives.
	PartCRC64NVME []string  `json:"part_crc64nvme,omitempty"`
	PartSize      int64     `json:"part_size"`
	Created       time.Time `json:"created"`
}

func (u manifest) upload(id string) store.Upload {
	return store.Upload{ID: id, Name: u.Name, Size: u.Size, SHA256: u.SHA256, CRC64NVME: u.CRC64NVME,
		PartCRC64NVME: u.PartCRC64NVME, PartSize: u.PartSize, Created: u.Created}
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := range len(s) {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (s *Store) uploadTTL() time.Duration {
	if s.opts.UploadTTL > 0 {
		return s.opts.UploadTTL
	}
	return DefaultUploadTTL
}

// CreateUpload implements store.Multipart. The upload is assembled under a
// staging name and renamed into place, so a directory named like an ID
// always had a manifest.
func (s *Store) CreateUpload(ctx context.Context, u store.Upload) (_ store.Upload, err error) {
	u.SHA256 = strings.ToLower(u.SHA256)
	if err := u.Validate(); err != nil {
		return store.Upload{}, fmt.Errorf("dirstore: create upload: %w", err)
	}
	tmp, abort, err := s.beginUpload(ctx, uploadsDir, u.Size)
	if err != nil {
		return store.Upload{}, fmt.Errorf("dirstore: create upload: %w", err)
	}
	defer func() {
		if err != nil {
			abort()
		}
	}()
	u.ID = store.NewUploadID()
	// No monotonic reading, so the value returned equals the value read back.
	u.Created = time.Now().UTC().Round(0)
	data, err := json.Marshal(manifest{Name: u.Name, Size: u.Size, SHA256: u.SHA256, CRC64NVME: u.CRC64NVME,
		PartCRC64NVME: u.PartCRC64NVME, PartSize: u.PartSize, Created: u.Created})
	if err != nil {
		return store.Upload{}, fmt.Errorf("dirstore: create upload: %w", err)
	}
	f, err := s.root.OpenFile(tmp+"/"+manifestName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return store.Upload{}, fmt.Errorf("dirstore: create upload: %w", uploadsError(err))
	}
	_, err = f.Write(data)
	if err == nil && s.opts.Fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return store.Upload{}, fmt.Errorf("dirstore: create upload: %w", uploadsError(err))
	}
	if err := s.createData(tmp+"/"+dataName, u.Size); err != nil {
		return store.Upload{}, fmt.Errorf("dirstore: create upload: %w", uploadsError(err))
	}
	if err := s.root.Rename(tmp, uploadsDir+"/"+u.ID); err != nil {
		return store.Upload{}, fmt.Errorf("dirstore: create upload: %w", uploadsError(err))
	}
	if s.opts.Fsync {
		for _, d := range []string{uploadsDir, "."} {
			if err := s.syncDir(d); err != nil {
				s.root.RemoveAll(uploadsDir + "/" + u.ID)
				return store.Upload{}, err
			}
		}
	}
	return u, nil
}

// sweepEvery is the longest a creation waits for the next sweep of
// abandoned uploads; with a shorter TTL, the TTL is. Sweeping at every
// creation would make each cost as much as the uploads open.
const sweepEvery = time.Minute

// boundSweepFloor is how recent a sweep spares a creation refused at
// Options.MaxOpenUploads from sweeping again: a burst of refusals must stay
// cheap, not walk the upload area once each.
const boundSweepFloor = 5 * time.Second

// maybeSweepUploads sweeps when the last sweep is old enough.
func (s *Store) maybeSweepUploads() {
	s.sweepUploadsOlderThan(min(s.uploadTTL(), sweepEvery))
}

// sweepUploadsOlderThan sweeps when the last sweep is at least age old.
func (s *Store) sweepUploadsOlderThan(age time.Duration) {
	if last := s.lastSweep.Load(); time.Since(time.Unix(0, last)) >= age {
		s.sweepUploads()
	}
}

// beginUpload begins the creation of an upload, multipart or tus, of size
// bytes (or store.UnknownSize) in area: it checks the space, sweeps when a
// sweep is due, takes a slot and makes the staging directory, tmp, that the
// caller fills and renames into place. If the creation fails after, the
// caller calls abort, which removes tmp and gives the slot back.
func (s *Store) beginUpload(ctx context.Context, area string, size int64) (tmp string, abort func(), err error) {
	if err := ctx.Err(); err != nil {
		return "", nil, err
	}
	if err := s.CheckSpace(ctx, size); err != nil {
		return "", nil, err
	}
	s.maybeSweepUploads()
	if err := s.takeUploadSlot(); err != nil {
		return "", nil, err
	}
	tmp, err = s.stageUpload(area)
	if err != nil {
		s.releaseUploadSlot()
		return "", nil, err
	}
	return tmp, func() {
		s.root.RemoveAll(tmp)
		s.releaseUploadSlot()
	}, nil
}

// takeUploadSlot counts one more open upload, multipart or tus, if the
// bound allows. At the bound it sweeps first, unless a sweep ran moments
// ago: abandoned uploads make room. The caller gives the slot back with
// releaseUploadSlot when the creation fails.
func (s *Store) takeUploadSlot() error {
	limit := int64(s.opts.MaxOpenUploads)
	if limit <= 0 {
		s.openUploads.Add(1)
		return nil
	}
	for attempt := range 2 {
		if s.openUploads.Add(1) <= limit {
			return nil
		}
		s.openUploads.Add(-1)
		if attempt == 0 {
			s.sweepUploadsOlderThan(boundSweepFloor)
		}
	}
	return fmt.Errorf("%w: %d open uploads, the most allowed", store.ErrTooManyUploads, limit)
}

// releaseUploadSlot gives back the slot of an upload that ended, or whose
// creation failed.
func (s *Store) releaseUploadSlot() { s.openUploads.Add(-1) }

// createData makes an upload's file, with its space reserved.
func (s *Store) createData(name string, size int64) (err error) {
	f, err := s.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = s.preallocate(f, size)
	if err == nil && s.opts.Fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// uploadsError maps a filesystem error about the upload area. Not
// mapError: its ErrNotFound and ErrExists speak of stored names, and the
// upload area has none; only running out of space means the same here.
func uploadsError(err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%w: %w", store.ErrInsufficientStorage, err)
	}
	return err
}

// Upload implements store.Multipart. The manifest never changes after it
// is created, so reading it needs no lock.
func (s *Store) Upload(_ context.Context, id string) (store.Upload, error) {
	h, err := s.openUpload(id)
	if err != nil {
		return store.Upload{}, err
	}
	defer h.close()
	return h.u, nil
}

// ListParts implements store.Multipart. It waits for a Complete under way,
// whose outcome decides whether the upload still has parts.
func (s *Store) ListParts(_ context.Context, id string) ([]store.Part, error) {
	h, err := s.lockUpload(id, unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer h.close()
	parts, _, err := h.parts()
	return parts, err
}

// PutPart implements store.PartWriter. The part is written at its offset
// in the upload's file under the upload's lock, which orders it with the
// other parts' writes and markers; the body is spooled already, so the lock
// is held for a copy from disk to disk.
func (s *Store) PutPart(ctx context.Context, id string, n int, body store.Body) (_ store.Part, err error) {
	h, err := s.openUpload(id)
	if err != nil {
		return store.Part{}, err
	}
	defer h.close()
	want := h.u.PartSizeOf(n)
	switch {
	case want < 0:
		return store.Part{}, fmt.Errorf("%w: upload %s has no part %d (it has %d)", store.ErrUploadMismatch, id, n, h.u.PartCount())
	case body.Size() != want:
		return store.Part{}, fmt.Errorf("%w: part %d of upload %s is %d bytes, not %d", store.ErrUploadMismatch, n, id, body.Size(), want)
	}
	if err := ctx.Err(); err != nil {
		return store.Part{}, err
	}
	sum := body.SHA256()
	etag := hex.EncodeToString(sum[:])[:etagLen]
	name := fmt.Sprintf("%05d-%s", n, etag)
	part := store.Part{Number: n, Size: want, ETag: `"` + etag + `"`}

	if err := h.lock(unix.LOCK_EX); err != nil {
		return store.Part{}, err
	}
	_, received, err := h.parts()
	if err != nil {
		return store.Part{}, err
	}
	if slices.Equal(received[n], []string{name}) {
		// Sent again, as a client does when an answer was lost: the bytes
		// are in place already.
		h.touch()
		return part, nil
	}
	if err := h.resetPrefix(n); err != nil {
		return store.Part{}, err
	}
	for _, old := range received[n] {
		if err := h.dir.Remove(old); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return store.Part{}, fmt.Errorf("dirstore: upload %s: replace part %d: %w", id, n, err)
		}
	}
	delete(received, n)
	if len(received) > 0 && s.opts.Fsync {
		// The old marker must be gone before its bytes change.
		if err := h.syncDir(); err != nil {
			return store.Part{}, err
		}
	}

	data, err := h.dir.OpenFile(dataName, os.O_RDWR, 0)
	if err != nil {
		return store.Part{}, fmt.Errorf("dirstore: upload %s: open file: %w", id, err)
	}
	defer data.Close()
	p := h.loadPrefix()
	var hashes []hash.Hash
	if p.parts == n-1 {
		// The part extends the prefix: hash it on the way in.
		hashes = []hash.Hash{p.sha, p.crc}
	}
	if _, err := s.writeInPlace(ctx, data, int64(n-1)*h.u.PartSize, body.Reader(), want, hashes...); err != nil {
		return store.Part{}, fmt.Errorf("dirstore: upload %s: write part %d: %w", id, n, err)
	}
	if s.opts.Fsync {
		if err := data.Sync(); err != nil {
			return store.Part{}, fmt.Errorf("dirstore: upload %s: sync part %d: %w", id, n, err)
		}
	}
	if testHookPartWritten != nil {
		testHookPartWritten()
	}
	m, err := h.dir.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return store.Part{}, fmt.Errorf("dirstore: upload %s: put part %d: %w", id, n, uploadsError(err))
	}
	m.Close()
	received[n] = []string{name}
	// The sweep measures idleness from here. The marker touched the
	// directory already; the manifest's time says so where directory
	// times are not kept.
	h.touch()
	if s.opts.Fsync {
		if err := h.syncDir(); err != nil {
			return store.Part{}, err
		}
	}
	grew := p.parts == n-1
	if grew {
		p.parts = n
	}
	if more, err := h.advance(ctx, data, p, received); err != nil {
		return store.Part{}, err
	} else if grew || more {
		// Best effort: without it, completion hashes what it would cover.
		h.savePrefix(p)
	}
	return part, nil
}

// testHookPartWritten, if set, is called between a part's bytes and its
// marker.
var testHookPartWritten func()

func (h *upload) touch() {
	now := time.Now()
	h.dir.Chtimes(manifestName, now, now)
}

// Complete implements store.Multipart. It holds the upload's lock
// throughout, so of two Completes racing, the second finds the upload gone.
// It hashes only the parts the running hash has not reached, and links the
// upload's file into place: no copy, and no more space than the upload
// took when it was created.
func (s *Store) Complete(ctx context.Context, id string, parts []store.Part) (_ store.Completed, err error) {
	h, err := s.lockUpload(id, unix.LOCK_EX)
	if err != nil {
		return store.Completed{}, err
	}
	defer h.close()
	u := h.u
	if err := h.match(parts); err != nil {
		return store.Completed{}, err
	}
	// Refuse a taken name before hashing; the commit below still decides
	// the race. The bytes have their space already.
	if err := s.Check(ctx, u.Name, 0); err != nil {
		if errors.Is(err, store.ErrExists) {
			h.discard()
		}
		return store.Completed{}, err
	}
	data, err := h.dir.OpenFile(dataName, os.O_RDWR, 0)
	if err != nil {
		return store.Completed{}, fmt.Errorf("dirstore: upload %s: open file: %w", id, err)
	}
	defer data.Close()
	// Locked like a staging file, which its link below is, for a sweep
	// in another process.
	if err := unix.Flock(int(data.Fd()), unix.LOCK_EX); err != nil {
		return store.Completed{}, fmt.Errorf("dirstore: upload %s: lock file: %w", id, err)
	}
	_, received, err := h.parts()
	if err != nil {
		return store.Completed{}, err
	}
	p := h.loadPrefix()
	if _, err := h.advance(ctx, data, p, received); err != nil {
		return store.Completed{}, err
	}
	if p.parts != u.PartCount() {
		return store.Completed{}, fmt.Errorf("dirstore: upload %s: hashed %d parts of %d", id, p.parts, u.PartCount())
	}
	fi, err := data.Stat()
	if err != nil {
		return store.Completed{}, fmt.Errorf("dirstore: upload %s: %w", id, err)
	}
	if fi.Size() != u.Size {
		return store.Completed{}, fmt.Errorf("%w: upload %s: the file holds %d bytes, not %d", store.ErrUploadMismatch, id, fi.Size(), u.Size)
	}
	digest, crcs := hex.EncodeToString(p.sha.Sum(nil)), store.EncodeCRC64NVME(p.crc.Sum64())
	switch {
	case u.SHA256 != "" && digest != u.SHA256:
		err = fmt.Errorf("%w: upload %s of %q: the parts' SHA-256 is %s, %s was declared", store.ErrChecksum, id, u.Name, digest, u.SHA256)
	case u.CRC64NVME != "" && crcs != u.CRC64NVME:
		err = fmt.Errorf("%w: upload %s of %q: the parts' CRC64NVME is %s, %s was declared", store.ErrChecksum, id, u.Name, crcs, u.CRC64NVME)
	}
	if err != nil {
		h.discard()
		return store.Completed{}, err
	}
	// The last moment to give up: a caller gone by now keeps its upload,
	// as one gone while the parts were hashed does.
	if err := ctx.Err(); err != nil {
		return store.Completed{}, err
	}
	if err := data.Chmod(s.opts.FileMode); err != nil {
		return store.Completed{}, fmt.Errorf("dirstore: upload %s: chmod: %w", id, err)
	}
	// The file is as old as its completion, however long ago its parts
	// came, as an object S3 completes is: retention counts from here.
	now := time.Now()
	if err := h.dir.Chtimes(dataName, now, now); err != nil {
		return store.Completed{}, fmt.Errorf("dirstore: upload %s: set its time: %w", id, err)
	}
	if s.opts.Fsync {
		if err := data.Sync(); err != nil {
			return store.Completed{}, fmt.Errorf("dirstore: upload %s: sync: %w", id, err)
		}
	}

	// Directories are made now, since the file is staged in its
	// destination directory. A failure from here on removes those this
	// call made, after the file (deferred calls run last first).
	var made madeDirs
	defer func() {
		if err != nil {
			made.remove(s.root)
		}
	}()
	st, err := s.newStaged(u.Name, &made)
	if err != nil {
		if errors.Is(err, store.ErrExists) {
			h.discard()
		}
		return store.Completed{}, err
	}
	defer func() {
		if err != nil {
			st.rollback()
		}
		st.close()
	}()
	if err := h.stageData(st, data); err != nil {
		return store.Completed{}, err
	}
	if err := st.syncData(ctx); err != nil {
		return store.Completed{}, err
	}
	if err := st.commit(s.opts.Overwrite); err != nil {
		if errors.Is(err, store.ErrExists) {
			h.discard()
		}
		return store.Completed{}, err
	}
	if s.opts.Fsync {
		if err := s.syncDirs(ctx, []store.File{{Name: u.Name}}); err != nil {
			return store.Completed{}, err
		}
	}
	h.discard()
	return store.Completed{Info: info(u.Name, fi), SHA256: digest, CRC64NVME: crcs}, nil
}

// stageData links the upload's file under st's staging name. It goes by
// name, from the upload's own directory, which only holders of the
// upload's lock change. Where no link can be made (the upload area on
// another filesystem, say) the file is copied.
func (h *upload) stageData(st *staged, data *os.File) error {
	d, err := h.dir.Open(".")
	if err != nil {
		return fmt.Errorf("dirstore: upload %s: %w", h.id, err)
	}
	defer d.Close()
	st.tmp = stageName()
	err = st.inDir(func(dirfd int) error {
		return unix.Linkat(int(d.Fd()), dataName, dirfd, st.tmp, 0)
	})
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EXDEV) && !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EMLINK) {
		return mapError(st.name, err)
	}
	return h.s.stageCopy(st, func(w io.Writer) error {
		bufs, release := h.s.buffers(1)
		defer release()
		_, err := io.CopyBuffer(struct{ io.Writer }{w}, io.NewSectionReader(data, 0, h.u.Size), bufs[0])
		return err
	})
}

// Abort implements store.Multipart.
func (s *Store) Abort(_ context.Context, id string) error {
	h, err := s.lockUpload(id, unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer h.close()
	return h.remove()
}

// upload is an open upload: its directory, as a root of its own, and its
// manifest, whose flock is the upload's lock.
type upload struct {
	s        *Store
	id       string
	u        store.Upload
	dir      *os.Root
	manifest *os.File
}

// openUpload opens the upload with this ID and reads its declaration. An
// ID that is not of our format never reaches the filesystem.
func (s *Store) openUpload(id string) (*upload, error) {
	if !store.ValidUploadID(id) {
		return nil, notFound(id)
	}
	dir, err := s.root.OpenRoot(uploadsDir + "/" + id)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, notFound(id)
		}
		return nil, fmt.Errorf("dirstore: upload %s: %w", id, err)
	}
	h := &upload{s: s, id: id, dir: dir}
	h.manifest, err = dir.Open(manifestName)
	if err != nil {
		dir.Close()
		if errors.Is(err, fs.ErrNotExist) {
			// Being removed, or left half-removed by a crash.
			return nil, notFound(id)
		}
		return nil, fmt.Errorf("dirstore: upload %s: %w", id, err)
	}
	var m manifest
	data, err := io.ReadAll(io.LimitReader(h.manifest, maxManifest))
	if err == nil {
		err = json.Unmarshal(data, &m)
	}
	if err == nil {
		h.u = m.upload(id)
		// A damaged manifest must not make nonsense part names.
		err = h.u.Validate()
	}
	if err != nil {
		h.close()
		return nil, fmt.Errorf("dirstore: upload %s: %w: %w", id, errDamaged, err)
	}
	return h, nil
}

// lockUpload opens the upload and takes its lock (unix.LOCK_SH or LOCK_EX,
// with LOCK_NB to give up at once).
func (s *Store) lockUpload(id string, how int) (*upload, error) {
	h, err := s.openUpload(id)
	if err != nil {
		return nil, err
	}
	if err := h.lock(how); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

// lock takes the upload's lock, then checks that the upload was not removed
// while this waited for it.
func (h *upload) lock(how int) error {
	for {
		err := unix.Flock(int(h.manifest.Fd()), how)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("dirstore: upload %s: lock: %w", h.id, err)
		}
	}
	if h.gone() {
		return notFound(h.id)
	}
	return nil
}

// gone reports whether the upload was removed since it was opened: its
// manifest has no name left.
func (h *upload) gone() bool {
	fi, err := h.manifest.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Nlink == 0
}

// close releases the lock, if held, with the manifest.
func (h *upload) close() {
	h.manifest.Close()
	h.dir.Close()
}

// parts returns the parts received, by number, and, for each number, the
// names holding it (one, unless a replacement was interrupted). It needs
// the lock, so that no replacement is half seen.
func (h *upload) parts() ([]store.Part, map[int][]string, error) {
	entries, err := fs.ReadDir(h.dir.FS(), ".")
	if err != nil {
		return nil, nil, fmt.Errorf("dirstore: upload %s: list parts: %w", h.id, err)
	}
	names := map[int][]string{}
	parts := []store.Part{}
	for _, e := range entries {
		n, etag, ok := parsePartName(e.Name())
		if !ok || !e.Type().IsRegular() || n > h.u.PartCount() {
			continue
		}
		names[n] = append(names[n], e.Name())
		parts = append(parts, store.Part{Number: n, Size: h.u.PartSizeOf(n), ETag: `"` + etag + `"`})
	}
	slices.SortFunc(parts, func(a, b store.Part) int { return a.Number - b.Number })
	return parts, names, nil
}

// parsePartName parses "00001-{etag}".
func parsePartName(name string) (n int, etag string, ok bool) {
	if len(name) != partNameLen || name[5] != '-' || !isHex(name[6:], etagLen) {
		return 0, "", false
	}
	for i := range 5 {
		if name[i] < '0' || name[i] > '9' {
			return 0, "", false
		}
	}
	n, _ = strconv.Atoi(name[:5])
	return n, name[6:], n >= 1
}

// match checks that parts is exactly 1..PartCount, in order, with the ETags
// (and, where given, the sizes) of the parts received, each of the size the
// declaration gives it.
func (h *upload) match(parts []store.Part) error {
	u := h.u
	mismatch := func(format string, args ...any) error {
		return fmt.Errorf("%w: upload %s: %s", store.ErrUploadMismatch, h.id, fmt.Sprintf(format, args...))
	}
	if len(parts) != u.PartCount() {
		return mismatch("%d parts named, the upload has %d", len(parts), u.PartCount())
	}
	have, names, err := h.parts()
	if err != nil {
		return err
	}
	byNumber := make(map[int]store.Part, len(have))
	for _, p := range have {
		byNumber[p.Number] = p
	}
	for i, p := range parts {
		n := i + 1
		got, ok := byNumber[n]
		switch {
		case p.Number != n:
			return mismatch("part %d named where part %d belongs", p.Number, n)
		case !ok || len(names[n]) != 1:
			return mismatch("part %d has not been received", n)
		case strings.Trim(p.ETag, `"`) != strings.Trim(got.ETag, `"`):
			return mismatch("part %d's ETag %s is not the current %s", n, p.ETag, got.ETag)
		case p.Size != 0 && p.Size != got.Size:
			return mismatch("part %d is %d bytes, not %d", n, got.Size, p.Size)
		case got.Size != u.PartSizeOf(n):
			return mismatch("part %d is %d bytes, the declaration gives it %d", n, got.Size, u.PartSizeOf(n))
		}
	}
	return nil
}

// remove deletes the upload. The caller holds the lock; the manifest goes
// first, which is what makes the upload gone for everyone.
func (h *upload) remove() error {
	if err := h.dir.Remove(manifestName); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("dirstore: upload %s: remove: %w", h.id, err)
	}
	h.s.releaseUploadSlot()
	// Without its manifest the upload is gone already: parts that fail
	// to go are the sweep's.
	h.s.root.RemoveAll(uploadsDir + "/" + h.id)
	return nil
}

// discard removes the upload where Complete's own result is what the
// caller needs to hear; the upload is unreachable whatever happens.
func (h *upload) discard() { h.remove() }

func (h *upload) syncDir() error {
	d, err := h.dir.Open(".")
	if err != nil {
		return fmt.Errorf("dirstore: upload %s: %w", h.id, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("dirstore: upload %s: sync: %w", h.id, err)
	}
	return nil
}

// idleSince returns when the upload last received a part (or was created).
func (h *upload) idleSince() (time.Time, error) {
	mf, err := h.manifest.Stat()
	if err != nil {
		return time.Time{}, err
	}
	df, err := h.dir.Stat(".")
	if err != nil {
		return time.Time{}, err
	}
	if df.ModTime().After(mf.ModTime()) {
		return df.ModTime(), nil
	}
	return mf.ModTime(), nil
}

// stageUpload makes the folder a new upload in area is prepared in, under
// a name the sweep knows as a creation's (stagePrefix, stageSuffix); the
// caller renames it to the upload's ID, or removes it.
func (s *Store) stageUpload(area string) (string, error) {
	if err := s.root.MkdirAll(area, 0o700); err != nil {
		return "", uploadsError(err)
	}
	tmp := area + "/" + stagePrefix + rand.Text() + stageSuffix
	if err := s.root.Mkdir(tmp, 0o700); err != nil {
		return "", uploadsError(err)
	}
	return tmp, nil
}

// sweepArea walks one area of uploads, dir (multipart or tus): it removes
// what crashed creations left, and uploads whose record a crashed removal
// took (visit's store.ErrUploadNotFound) or a power cut emptied (errDamaged,
// once older than cutoff), and hands every other upload's ID to visit,
// which reports whether it removed it. It returns how many it removed.
func (s *Store) sweepArea(dir string, cutoff time.Time, visit func(id string) (bool, error)) int {
	entries, err := fs.ReadDir(s.root.FS(), dir)
	if err != nil {
		return 0
	}
	removed := 0
	for _, e := range entries {
		name := dir + "/" + e.Name()
		if !store.ValidUploadID(e.Name()) {
			// A creation that died before its rename. A live one is a
			// moment old, so the TTL is a safe margin.
			if strings.HasPrefix(e.Name(), stagePrefix) && strings.HasSuffix(e.Name(), stageSuffix) {
				if fi, err := e.Info(); err == nil && fi.ModTime().Before(cutoff) {
					s.root.RemoveAll(name)
				}
			}
			continue
		}
		gone, err := visit(e.Name())
		if err != nil {
			fi, serr := s.root.Stat(name)
			dead := errors.Is(err, store.ErrUploadNotFound) ||
				errors.Is(err, errDamaged) && serr == nil && fi.ModTime().Before(cutoff)
			gone = serr == nil && dead && s.root.RemoveAll(name) == nil
		}
		if gone {
			removed++
		}
	}
	return removed
}

// sweepUploads removes uploads idle for longer than the TTL, what crashed
// removals and creations left behind, and returns how many uploads it
// removed. Uploads locked by someone (a Complete under way, in this process
// or another) are left alone. It is best effort: a failure only means the
// next sweep tries again.
func (s *Store) sweepUploads() int {
	if !s.sweeping.CompareAndSwap(false, true) {
		return 0
	}
	defer s.sweeping.Store(false)
	s.lastSweep.Store(time.Now().UnixNano())
	if s.testHookSweepUploads != nil {
		s.testHookSweepUploads()
	}
	// The count of open uploads is set again from what is found, which
	// also takes in uploads other processes sharing the directory opened
	// or closed. Creations and removals meanwhile may be missed until
	// the next sweep.
	live := int64(0)
	defer func() { s.openUploads.Store(live) }()
	cutoff := time.Now().Add(-s.uploadTTL())
	removed := s.sweepArea(uploadsDir, cutoff, func(id string) (bool, error) {
		h, err := s.openUpload(id)
		if err != nil {
			return false, err
		}
		defer h.close()
		if h.lock(unix.LOCK_EX|unix.LOCK_NB) == nil {
			if t, err := h.idleSince(); err == nil && t.Before(cutoff) && h.remove() == nil {
				return true, nil
			}
		}
		live++
		return false, nil
	})
	return removed + s.sweepTus(cutoff, &live)
}
