package dirstore

// Multipart uploads live under uploadsDir, one directory per upload, named
// by its ID:
//
//	.spillway-uploads/{id}/upload.json            the declaration (manifest)
//	.spillway-uploads/{id}/00001-{etag}           part 1, its ETag in its name
//	.spillway-uploads/{id}/.spillway-{rand}.tmp   a part being written
//
// Stored names never begin with a dot, so uploadsDir never collides with a
// file, and List and the staging sweep skip it. An upload exists exactly
// while its manifest does. The manifest's flock is the upload's lock: held
// shared to list parts, exclusively to replace a part, complete, abort or
// sweep. Removing an upload unlinks its manifest first, under the lock, so
// whoever was waiting for the lock finds it gone.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/minio/crc64nvme"
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
	// copyBuffer is the one buffer a completion, or a copied body, goes
	// through; writes of 256 KiB–1 MiB are the fast ones on these disks.
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
	if err := ctx.Err(); err != nil {
		return store.Upload{}, err
	}
	s.sweepUploads()

	u.ID = store.NewUploadID()
	// No monotonic reading, so the value returned equals the value read back.
	u.Created = time.Now().UTC().Round(0)
	data, err := json.Marshal(manifest{Name: u.Name, Size: u.Size, SHA256: u.SHA256, CRC64NVME: u.CRC64NVME,
		PartCRC64NVME: u.PartCRC64NVME, PartSize: u.PartSize, Created: u.Created})
	if err != nil {
		return store.Upload{}, fmt.Errorf("dirstore: create upload: %w", err)
	}
	if err := s.root.MkdirAll(uploadsDir, 0o700); err != nil {
		return store.Upload{}, fmt.Errorf("dirstore: create upload: %w", uploadsError(err))
	}
	tmp := uploadsDir + "/" + stagePrefix + rand.Text() + stageSuffix
	if err := s.root.Mkdir(tmp, 0o700); err != nil {
		return store.Upload{}, fmt.Errorf("dirstore: create upload: %w", uploadsError(err))
	}
	defer func() {
		if err != nil {
			s.root.RemoveAll(tmp)
		}
	}()
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

// PutPart implements store.PartWriter. The bytes are linked or copied under
// a temporary name without the lock, and only the rename into place is
// done under it, so a slow copy never holds up the upload's other parts.
func (s *Store) PutPart(ctx context.Context, id string, n int, body store.Body) (_ store.Part, err error) {
	h, err := s.openUpload(id)
	if err != nil {
		return store.Part{}, err
	}
	defer h.close()
	defer func() {
		if errors.Is(err, store.ErrUploadNotFound) {
			// A removal that raced this part could not remove the
			// directory while the part was in it. Only an empty one goes,
			// and an upload's directory is never empty while it exists.
			s.root.Remove(uploadsDir + "/" + h.id)
		}
	}()
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
	tmp := stagePrefix + rand.Text() + stageSuffix
	if err := s.writePart(h, tmp, body); err != nil {
		if h.gone() {
			// Aborted, completed or swept meanwhile: its directory went
			// from under the write.
			return store.Part{}, notFound(id)
		}
		return store.Part{}, err
	}
	defer func() {
		if tmp != "" {
			h.dir.Remove(tmp)
		}
	}()

	if err := h.lock(unix.LOCK_EX); err != nil {
		return store.Part{}, err
	}
	_, names, err := h.parts()
	if err != nil {
		return store.Part{}, err
	}
	// The old part goes first: a crash in between loses part n, which the
	// client then sends again, rather than leaving two and no way to tell
	// which one is current.
	for _, old := range names[n] {
		if old != name {
			if err := h.dir.Remove(old); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return store.Part{}, fmt.Errorf("dirstore: upload %s: replace part %d: %w", id, n, err)
			}
		}
	}
	if err := h.dir.Rename(tmp, name); err != nil {
		return store.Part{}, fmt.Errorf("dirstore: upload %s: put part %d: %w", id, n, uploadsError(err))
	}
	tmp = ""
	// The sweep measures idleness from here. The rename touched the
	// directory already; the manifest's time says so where directory
	// times are not kept.
	now := time.Now()
	h.dir.Chtimes(manifestName, now, now)
	if s.opts.Fsync {
		if err := h.syncDir(); err != nil {
			return store.Part{}, err
		}
	}
	return store.Part{Number: n, Size: want, ETag: `"` + etag + `"`}, nil
}

// writePart puts body's bytes under tmp in the upload's directory: a hard
// link to the body's file when both are on one filesystem, a copy
// otherwise.
func (s *Store) writePart(h *upload, tmp string, body store.Body) (err error) {
	if src := bodyFile(body); src != nil {
		if s.opts.Fsync {
			if err := src.Sync(); err != nil {
				return fmt.Errorf("dirstore: upload %s: sync part: %w", h.id, err)
			}
		}
		d, err := h.dir.Open(".")
		if err != nil {
			return fmt.Errorf("dirstore: upload %s: %w", h.id, err)
		}
		// By descriptor, as stageLink: the bytes that were hashed. The
		// part stays 0600, as the spool file is.
		err = s.linkFile(src, int(d.Fd()), tmp)
		d.Close()
		if err == nil {
			return nil
		}
		// Another filesystem, or a spool name swept away: copy instead.
	}
	f, err := h.dir.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("dirstore: upload %s: write part: %w", h.id, uploadsError(err))
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("dirstore: upload %s: write part: %w", h.id, uploadsError(cerr))
		}
		if err != nil {
			h.dir.Remove(tmp)
		}
	}()
	if err := writeBody(f, body); err != nil {
		return fmt.Errorf("dirstore: upload %s: write part: %w", h.id, uploadsError(err))
	}
	if s.opts.Fsync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("dirstore: upload %s: sync part: %w", h.id, err)
		}
	}
	return nil
}

// Complete implements store.Multipart. It holds the upload's lock
// throughout, so of two Completes racing, the second finds the upload gone.
func (s *Store) Complete(ctx context.Context, id string, parts []store.Part) (_ store.Completed, err error) {
	h, err := s.lockUpload(id, unix.LOCK_EX)
	if err != nil {
		return store.Completed{}, err
	}
	defer h.close()
	u := h.u
	names, err := h.match(parts)
	if err != nil {
		return store.Completed{}, err
	}
	// Refuse a taken name, or a full disk, before copying gigabytes; the
	// commit below still decides the race.
	if err := s.Check(ctx, u.Name, u.Size); err != nil {
		if errors.Is(err, store.ErrExists) {
			h.discard()
		}
		return store.Completed{}, err
	}

	// Directories are made now, before the bytes are assembled and
	// checked, since the file is staged in its destination directory. A
	// failure from here on removes those this call made, after the file
	// (deferred calls run last first).
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
	var sum [sha256.Size]byte
	var crc uint64
	if err := s.stageCopy(st, func(w io.Writer) error {
		var err error
		sum, crc, err = h.assemble(ctx, w, names)
		return err
	}); err != nil {
		return store.Completed{}, err
	}
	digest, crcs := hex.EncodeToString(sum[:]), store.EncodeCRC64NVME(crc)
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
	fi, err := st.f.Stat()
	if err != nil {
		return store.Completed{}, mapError(u.Name, err)
	}
	if err := st.commit(s.opts.Overwrite); err != nil {
		if errors.Is(err, store.ErrExists) {
			h.discard()
		}
		return store.Completed{}, err
	}
	if s.opts.Fsync {
		if err := s.syncDirs([]store.File{{Name: u.Name}}); err != nil {
			return store.Completed{}, err
		}
	}
	h.discard()
	return store.Completed{Info: info(u.Name, fi), SHA256: digest, CRC64NVME: crcs}, nil
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
		fi, err := e.Info()
		if err != nil {
			return nil, nil, fmt.Errorf("dirstore: upload %s: list parts: %w", h.id, err)
		}
		names[n] = append(names[n], e.Name())
		parts = append(parts, store.Part{Number: n, Size: fi.Size(), ETag: `"` + etag + `"`})
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
// declaration gives it. It returns the parts' file names in order.
func (h *upload) match(parts []store.Part) ([]string, error) {
	u := h.u
	mismatch := func(format string, args ...any) error {
		return fmt.Errorf("%w: upload %s: %s", store.ErrUploadMismatch, h.id, fmt.Sprintf(format, args...))
	}
	if len(parts) != u.PartCount() {
		return nil, mismatch("%d parts named, the upload has %d", len(parts), u.PartCount())
	}
	have, names, err := h.parts()
	if err != nil {
		return nil, err
	}
	byNumber := make(map[int]store.Part, len(have))
	for _, p := range have {
		byNumber[p.Number] = p
	}
	files := make([]string, len(parts))
	for i, p := range parts {
		n := i + 1
		got, ok := byNumber[n]
		switch {
		case p.Number != n:
			return nil, mismatch("part %d named where part %d belongs", p.Number, n)
		case !ok || len(names[n]) != 1:
			return nil, mismatch("part %d has not been received", n)
		case strings.Trim(p.ETag, `"`) != strings.Trim(got.ETag, `"`):
			return nil, mismatch("part %d's ETag %s is not the current %s", n, p.ETag, got.ETag)
		case p.Size != 0 && p.Size != got.Size:
			return nil, mismatch("part %d is %d bytes, not %d", n, got.Size, p.Size)
		case got.Size != u.PartSizeOf(n):
			return nil, mismatch("part %d is %d bytes, the declaration gives it %d", n, got.Size, u.PartSizeOf(n))
		}
		files[i] = names[n][0]
	}
	return files, nil
}

// assemble writes the parts to w in order through one buffer, hashing
// (SHA-256 and CRC64NVME) and counting as it goes, so memory stays the
// same whatever the file's size.
func (h *upload) assemble(ctx context.Context, w io.Writer, files []string) (sum [sha256.Size]byte, crc uint64, err error) {
	hash, crch := sha256.New(), crc64nvme.New()
	buf := make([]byte, copyBuffer)
	var total int64
	for i, name := range files {
		n, err := h.copyPart(ctx, w, io.MultiWriter(hash, crch), name, buf)
		if err != nil {
			return sum, 0, err
		}
		if want := h.u.PartSizeOf(i + 1); n != want {
			return sum, 0, fmt.Errorf("%w: upload %s: part %d holds %d bytes, not %d", store.ErrUploadMismatch, h.id, i+1, n, want)
		}
		total += n
	}
	if total != h.u.Size {
		return sum, 0, fmt.Errorf("%w: upload %s: the parts hold %d bytes, not %d", store.ErrUploadMismatch, h.id, total, h.u.Size)
	}
	copy(sum[:], hash.Sum(nil))
	return sum, crch.Sum64(), nil
}

func (h *upload) copyPart(ctx context.Context, w, hash io.Writer, name string, buf []byte) (int64, error) {
	f, err := h.dir.Open(name)
	if err != nil {
		return 0, fmt.Errorf("dirstore: upload %s: open part: %w", h.id, err)
	}
	defer f.Close()
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, rerr := io.ReadFull(f, buf)
		if k > 0 {
			hash.Write(buf[:k])
			if _, err := w.Write(buf[:k]); err != nil {
				return n, err
			}
			n += int64(k)
		}
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			return n, nil
		case rerr != nil:
			return n, fmt.Errorf("dirstore: upload %s: read part: %w", h.id, rerr)
		}
	}
}

// remove deletes the upload. The caller holds the lock; the manifest goes
// first, which is what makes the upload gone for everyone.
func (h *upload) remove() error {
	if err := h.dir.Remove(manifestName); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("dirstore: upload %s: remove: %w", h.id, err)
	}
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
	entries, err := fs.ReadDir(s.root.FS(), uploadsDir)
	if err != nil {
		return 0
	}
	cutoff := time.Now().Add(-s.uploadTTL())
	removed := 0
	for _, e := range entries {
		name := uploadsDir + "/" + e.Name()
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
		h, err := s.openUpload(e.Name())
		if err != nil {
			// No manifest: a removal that was cut short, so the upload is
			// gone and only its parts are left. Or a manifest that a power
			// cut emptied, which nobody can complete.
			fi, serr := s.root.Stat(name)
			dead := errors.Is(err, store.ErrUploadNotFound) ||
				errors.Is(err, errDamaged) && serr == nil && fi.ModTime().Before(cutoff)
			if serr == nil && dead && s.root.RemoveAll(name) == nil {
				removed++
			}
			continue
		}
		if h.lock(unix.LOCK_EX|unix.LOCK_NB) == nil {
			if t, err := h.idleSince(); err == nil && t.Before(cutoff) && h.remove() == nil {
				removed++
			}
		}
		h.close()
	}
	return removed + s.sweepTus(cutoff)
}
