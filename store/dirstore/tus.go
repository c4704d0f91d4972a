package dirstore

// Resumable (tus) uploads live beside the multipart ones, one directory
// each:
//
//	.spillway-uploads/tus/{id}/state.json   declaration; what it became
//	.spillway-uploads/tus/{id}/progress     offset and hash states, in place
//	.spillway-uploads/tus/{id}/data         the bytes received, in place
//
// data is written in place at the offset and its flock is the upload's
// lock, held while a chunk is appended. What a chunk changes (the offset,
// a length declared late, the running hashes' states) is a fixed-size
// record written over the older of progress's two slots once the chunk's
// bytes are in data, each slot with its sequence number and checksum, so
// that a crash at any moment leaves the slot of the last whole chunk
// intact, and whatever data holds past its offset is written over by the
// next one. A chunk thus costs one small write in place (and, durable, an
// fdatasync of data and of progress), not a new file renamed into place
// and a directory fsync. state.json is written twice: at creation, and
// when the upload finishes, when it says what the file became. The last
// chunk publishes data itself, linked under the file's name by its
// descriptor, as Put links a spooled body: the bytes are written once. A
// finished upload keeps only its state.json until the sweep finds it
// idle.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"spillway/store"
)

var _ store.ResumableStore = (*Store)(nil)

const (
	tusDir          = uploadsDir + "/tus"
	tusStateName    = "state.json"
	tusProgressName = "progress"
	tusDataName     = "data"
)

// tusState is state.json.
type tusState struct {
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	Offset   int64     `json:"offset"`
	Metadata string    `json:"metadata,omitempty"`
	Created  time.Time `json:"created"`
	// The running hashes of the bytes before Offset, as their
	// MarshalBinary writes them.
	SHA256 []byte `json:"sha256_state"`
	CRC64  []byte `json:"crc64nvme_state"`
	// Done is the published file, once the upload finished.
	Done *tusDone `json:"done,omitempty"`

	// seq numbers the progress record that Offset, Size and the hash
	// states come from; 0 when they come from state.json.
	seq uint64
}

// tusDone is what a finished upload became.
type tusDone struct {
	Modified  time.Time `json:"modified"`
	SHA256    string    `json:"sha256"`
	CRC64NVME string    `json:"crc64nvme"`
}

func (st *tusState) resumable(id string, modified time.Time, ttl time.Duration) store.Resumable {
	r := store.Resumable{
		ID: id, Name: st.Name, Size: st.Size, Offset: st.Offset, Metadata: st.Metadata,
		Created: st.Created, Expires: modified.Add(ttl).UTC().Truncate(time.Second),
	}
	if d := st.Done; d != nil {
		r.Done = &store.Finished{
			Info:   store.Info{Name: st.Name, Size: st.Size, Modified: d.Modified},
			SHA256: d.SHA256, CRC64NVME: d.CRC64NVME,
		}
	}
	return r
}

// CreateResumable implements store.ResumableStore. The upload's directory
// is assembled under a staging name and renamed into place, so a
// directory named like an ID always has its state and its data.
func (s *Store) CreateResumable(ctx context.Context, r store.Resumable) (_ store.Resumable, err error) {
	if err := store.ValidateName(r.Name); err != nil {
		return store.Resumable{}, err
	}
	if r.Size < store.UnknownSize || r.Size > store.MaxUploadSize {
		return store.Resumable{}, fmt.Errorf("%w: size %d", store.ErrUploadTooLarge, r.Size)
	}
	tmp, abort, err := s.beginUpload(ctx, tusDir, r.Size)
	if err != nil {
		return store.Resumable{}, fmt.Errorf("dirstore: create tus upload: %w", err)
	}
	defer func() {
		if err != nil {
			abort()
		}
	}()
	sum, _ := sha256.New().(encoding.BinaryMarshaler).MarshalBinary()
	crc, _ := store.NewCRC64NVME().(encoding.BinaryMarshaler).MarshalBinary()
	st := tusState{Name: r.Name, Size: r.Size, Metadata: r.Metadata, Created: time.Now().UTC().Round(0), SHA256: sum, CRC64: crc}

	// A known length is reserved now, as a multipart upload's is; a
	// deferred one when a PATCH declares it.
	if err := s.createData(tmp+"/"+tusDataName, max(r.Size, 0)); err != nil {
		return store.Resumable{}, fmt.Errorf("dirstore: create tus upload: %w", uploadsError(err))
	}
	// Both slots, empty, so that a chunk's record is written over blocks
	// progress already has. Its name is made durable with state.json's.
	f, err := s.root.OpenFile(tmp+"/"+tusProgressName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return store.Resumable{}, fmt.Errorf("dirstore: create tus upload: %w", uploadsError(err))
	}
	_, err = f.Write(make([]byte, 2*progressSlot))
	if err == nil && s.opts.Fsync {
		err = fdatasync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return store.Resumable{}, fmt.Errorf("dirstore: create tus upload: %w", uploadsError(err))
	}
	dir, err := s.root.OpenRoot(tmp)
	if err != nil {
		return store.Resumable{}, fmt.Errorf("dirstore: create tus upload: %w", err)
	}
	err = s.writeTusState(dir, &st)
	dir.Close()
	if err != nil {
		return store.Resumable{}, err
	}
	id := store.NewUploadID()
	if err := s.root.Rename(tmp, tusDir+"/"+id); err != nil {
		return store.Resumable{}, fmt.Errorf("dirstore: create tus upload: %w", uploadsError(err))
	}
	if s.opts.Fsync {
		if err := s.syncDir(tusDir); err != nil {
			s.root.RemoveAll(tusDir + "/" + id)
			return store.Resumable{}, err
		}
	}
	return st.resumable(id, time.Now(), s.uploadTTL()), nil
}

// writeTusState replaces dir's state.json with st: at creation, and when
// the upload finishes. A chunk writes only progress (writeProgress).
func (s *Store) writeTusState(dir *os.Root, st *tusState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("dirstore: tus state: %w", err)
	}
	if err := replaceFile(dir, stagePrefix+rand.Text()+stageSuffix, tusStateName, data, s.opts.Fsync); err != nil {
		return fmt.Errorf("dirstore: tus state: %w", err)
	}
	if s.opts.Fsync {
		if err := syncRoot(dir); err != nil {
			return fmt.Errorf("dirstore: tus state: sync: %w", err)
		}
	}
	return nil
}

// progress holds two slots of progressSlot bytes, at 0 and progressSlot.
// A record is
//
//	magic "stp1", seq uint64, offset int64, size int64,
//	len uint16 + the SHA-256 state, len uint16 + the CRC-64/NVME state,
//	zeros, and the CRC-32C of all that in the slot's last 4 bytes
//
// all big-endian. Record seq goes to slot seq%2, so a write never touches
// the slot of the record before it: a torn or short slot fails its
// checksum, and the other one is the last chunk acknowledged.
const (
	progressSlot  = 512
	progressMagic = "stp1"
	progressHead  = len(progressMagic) + 3*8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeProgress gives st's progress record.
func encodeProgress(st *tusState) ([]byte, error) {
	if progressHead+2+len(st.SHA256)+2+len(st.CRC64) > progressSlot-crc32.Size {
		return nil, fmt.Errorf("dirstore: tus progress: hash states of %d and %d bytes do not fit", len(st.SHA256), len(st.CRC64))
	}
	b := make([]byte, progressHead, progressSlot)
	copy(b, progressMagic)
	binary.BigEndian.PutUint64(b[4:], st.seq)
	binary.BigEndian.PutUint64(b[12:], uint64(st.Offset))
	binary.BigEndian.PutUint64(b[20:], uint64(st.Size))
	b = binary.BigEndian.AppendUint16(b, uint16(len(st.SHA256)))
	b = append(b, st.SHA256...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(st.CRC64)))
	b = append(b, st.CRC64...)
	b = b[:progressSlot-crc32.Size]
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// decodeProgress reads a progress record into st; it reports false for a
// slot that holds none, or not a whole one.
func decodeProgress(b []byte, st *tusState) bool {
	if len(b) != progressSlot || string(b[:len(progressMagic)]) != progressMagic ||
		crc32.Checksum(b[:progressSlot-crc32.Size], castagnoli) != binary.BigEndian.Uint32(b[progressSlot-crc32.Size:]) {
		return false
	}
	rest := b[progressHead : progressSlot-crc32.Size]
	field := func() []byte {
		if len(rest) < 2 {
			return nil
		}
		n := int(binary.BigEndian.Uint16(rest))
		if n > len(rest)-2 {
			rest = nil
			return nil
		}
		v := rest[2 : 2+n]
		rest = rest[2+n:]
		return v
	}
	sha, crc := field(), field()
	if sha == nil || crc == nil {
		return false
	}
	st.seq = binary.BigEndian.Uint64(b[4:])
	st.Offset = int64(binary.BigEndian.Uint64(b[12:]))
	st.Size = int64(binary.BigEndian.Uint64(b[20:]))
	st.SHA256, st.CRC64 = bytes.Clone(sha), bytes.Clone(crc)
	return true
}

// readProgress lays the newest whole record of progress over st, which
// state.json gave, and reports progress's modification time. Without one
// (an upload created before progress was kept, or that has had no chunk,
// or whose only record was torn) st stays as state.json has it.
func (u *tusUpload) readProgress(st *tusState) (time.Time, error) {
	f, err := u.dir.Open(tusProgressName)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("dirstore: tus upload %s: %w", u.id, err)
	}
	defer f.Close()
	var b [2 * progressSlot]byte
	n, err := f.ReadAt(b[:], 0)
	if err != nil && err != io.EOF {
		return time.Time{}, fmt.Errorf("dirstore: tus upload %s: %w", u.id, err)
	}
	var newest tusState
	for off := 0; off+progressSlot <= n; off += progressSlot {
		var rec tusState
		if decodeProgress(b[off:off+progressSlot], &rec) && rec.seq > newest.seq {
			newest = rec
		}
	}
	if newest.seq == 0 {
		return time.Time{}, nil
	}
	st.seq, st.Offset, st.Size, st.SHA256, st.CRC64 = newest.seq, newest.Offset, newest.Size, newest.SHA256, newest.CRC64
	fi, err := f.Stat()
	if err != nil {
		return time.Time{}, fmt.Errorf("dirstore: tus upload %s: %w", u.id, err)
	}
	return fi.ModTime(), nil
}

// writeProgress writes st's offset, size and hash states as the next
// progress record, over the slot of the one before last; the caller holds
// the lock. Durable, data is synced first, so that no record on disk
// counts bytes that are not.
func (s *Store) writeProgress(u *tusUpload, st *tusState) error {
	if s.opts.Fsync {
		if err := fdatasync(u.data); err != nil {
			return fmt.Errorf("dirstore: tus upload %s: sync: %w", u.id, err)
		}
	}
	next := *st
	next.seq++
	b, err := encodeProgress(&next)
	if err != nil {
		return err
	}
	f, err := u.dir.OpenFile(tusProgressName, os.O_WRONLY, 0)
	created := false
	if errors.Is(err, fs.ErrNotExist) {
		// An upload created before progress was kept.
		f, err = u.dir.OpenFile(tusProgressName, os.O_WRONLY|os.O_CREATE, 0o600)
		created = true
	}
	if err != nil {
		return fmt.Errorf("dirstore: tus upload %s: progress: %w", u.id, uploadsError(err))
	}
	_, err = f.WriteAt(b, int64(next.seq%2)*progressSlot)
	if err == nil && s.opts.Fsync {
		err = fdatasync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && created && s.opts.Fsync {
		err = syncRoot(u.dir)
	}
	if err != nil {
		return fmt.Errorf("dirstore: tus upload %s: progress: %w", u.id, uploadsError(err))
	}
	st.seq = next.seq
	return nil
}

// syncRoot fsyncs the directory dir, so that the names in it last.
func syncRoot(dir *os.Root) error {
	d, err := dir.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// tusUpload is an open resumable upload.
type tusUpload struct {
	id   string
	dir  *os.Root
	data *os.File // nil until lock opens it
	st   tusState
	mod  time.Time // state.json's or progress's modification time, the later
}

func (u *tusUpload) close() {
	if u.data != nil {
		u.data.Close()
	}
	u.dir.Close()
}

// openTus opens the upload with this ID and reads its state.
func (s *Store) openTus(id string) (*tusUpload, error) {
	u, err := s.openTusDir(id)
	if err != nil {
		return nil, err
	}
	if err := u.readState(); err != nil {
		u.close()
		return nil, err
	}
	return u, nil
}

// openTusDir opens the directory of the upload with this ID, and reads
// nothing. An ID that is not of our format never reaches the filesystem.
func (s *Store) openTusDir(id string) (*tusUpload, error) {
	if !store.ValidUploadID(id) {
		return nil, notFound(id)
	}
	dir, err := s.root.OpenRoot(tusDir + "/" + id)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, notFound(id)
		}
		return nil, fmt.Errorf("dirstore: tus upload %s: %w", id, err)
	}
	return &tusUpload{id: id, dir: dir}, nil
}

// lockTus opens the upload with this ID, takes its lock and reads its
// state under it: once, where it must be right. A finished upload is left
// with its record only, which nothing changes but its removal: it is read
// without the lock. When another request holds the lock, admit (if not
// nil) is given the state as it reads without the lock, so that a chunk it
// refuses is refused so whether or not the upload is busy; else the error
// is store.ErrLocked.
func (s *Store) lockTus(id string, admit func(store.Resumable) error) (*tusUpload, error) {
	u, err := s.openTusDir(id)
	if err != nil {
		return nil, err
	}
	switch err = u.lock(); {
	case errors.Is(err, store.ErrUploadNotFound):
		// No data, or data no longer linked: finished, or being removed.
		if rerr := u.readState(); rerr == nil && u.st.Done != nil {
			return u, nil
		}
	case errors.Is(err, store.ErrLocked) && admit != nil:
		if rerr := u.readState(); rerr == nil {
			if aerr := admit(u.st.resumable(id, u.mod, s.uploadTTL())); aerr != nil {
				err = aerr
			}
		}
	}
	if err != nil {
		u.close()
		return nil, err
	}
	return u, nil
}

func (u *tusUpload) readState() error {
	f, err := u.dir.Open(tusStateName)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// Being removed, or left half-removed by a crash.
			return notFound(u.id)
		}
		return fmt.Errorf("dirstore: tus upload %s: %w", u.id, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("dirstore: tus upload %s: %w", u.id, err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxManifest))
	if err != nil {
		return fmt.Errorf("dirstore: tus upload %s: %w", u.id, err)
	}
	var st tusState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("dirstore: tus upload %s: %w: %w", u.id, errDamaged, err)
	}
	mod := fi.ModTime()
	if st.Done == nil {
		pmod, err := u.readProgress(&st)
		if err != nil {
			return err
		}
		if pmod.After(mod) {
			mod = pmod
		}
	}
	u.st, u.mod = st, mod
	return nil
}

// lock opens data and takes the upload's lock without waiting: a second
// request gets ErrLocked at once rather than queueing behind a body that
// may take minutes. It reads the state under the lock.
func (u *tusUpload) lock() error {
	f, err := u.dir.OpenFile(tusDataName, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return notFound(u.id)
		}
		return fmt.Errorf("dirstore: tus upload %s: %w", u.id, err)
	}
	u.data = f
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	switch {
	case errors.Is(err, syscall.EWOULDBLOCK):
		return fmt.Errorf("%w: tus upload %s", store.ErrLocked, u.id)
	case err != nil:
		return fmt.Errorf("dirstore: tus upload %s: lock: %w", u.id, err)
	}
	// Published or removed while this opened it.
	if fi, err := f.Stat(); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink == 0 {
			return notFound(u.id)
		}
	}
	return u.readState()
}

// remove deletes the upload; the caller holds the lock. The state goes
// first, which is what makes the upload gone for everyone.
func (s *Store) removeTus(u *tusUpload) error {
	switch err := u.dir.Remove(tusStateName); {
	case err == nil && u.st.Done == nil:
		// A finished upload gave its slot back when it finished.
		s.releaseUploadSlot()
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("dirstore: tus upload %s: remove: %w", u.id, err)
	}
	s.root.RemoveAll(tusDir + "/" + u.id)
	return nil
}

// Resumable implements store.ResumableStore. state.json is replaced whole
// by a rename, and a progress record that is being written fails its
// checksum and gives way to the one before, so reading needs no lock.
func (s *Store) Resumable(_ context.Context, id string) (store.Resumable, error) {
	u, err := s.openTus(id)
	if err != nil {
		return store.Resumable{}, err
	}
	defer u.close()
	return u.st.resumable(id, u.mod, s.uploadTTL()), nil
}

// Terminate implements store.ResumableStore.
func (s *Store) Terminate(_ context.Context, id string) error {
	u, err := s.lockTus(id, nil)
	if err != nil {
		return err
	}
	defer u.close()
	return s.removeTus(u)
}

// Append implements store.ResumableStore.
func (s *Store) Append(ctx context.Context, id string, c store.Chunk) (store.Appended, error) {
	u, err := s.lockTus(id, c.Admit)
	if err != nil {
		return store.Appended{}, err
	}
	defer u.close()
	st := u.st
	if c.Admit != nil {
		if err := c.Admit(st.resumable(id, u.mod, s.uploadTTL())); err != nil {
			return store.Appended{}, err
		}
	}
	if st.Done != nil {
		// Finished: data, if its name is still there, is the published
		// file, and is not written.
		return store.AppendFinished(st.resumable(id, u.mod, s.uploadTTL()), c)
	}
	if c.Offset != st.Offset {
		return store.Appended{}, fmt.Errorf("%w: tus upload %s is at %d, the chunk is for %d", store.ErrOffsetMismatch, id, st.Offset, c.Offset)
	}
	if c.Size != store.UnknownSize {
		switch {
		case st.Size == store.UnknownSize && (c.Size < st.Offset || c.Size > c.MaxSize):
			return store.Appended{}, fmt.Errorf("%w: tus upload %s: size %d declared at offset %d", store.ErrUploadTooLarge, id, c.Size, st.Offset)
		case st.Size != store.UnknownSize && c.Size != st.Size:
			return store.Appended{}, fmt.Errorf("%w: tus upload %s: size %d declared, it has %d", store.ErrInvalidUpload, id, c.Size, st.Size)
		case st.Size == store.UnknownSize:
			// Declared at last: reserved now, as a known length is at
			// creation.
			if err := s.CheckSpace(ctx, c.Size-st.Offset); err != nil {
				return store.Appended{}, fmt.Errorf("dirstore: tus upload %s: %w", id, err)
			}
			if err := s.preallocate(u.data, c.Size); err != nil {
				// A fallocate that fails may keep what it allocated, and
				// the size it reached.
				u.data.Truncate(st.Offset)
				return store.Appended{}, fmt.Errorf("dirstore: tus upload %s: reserve %d bytes: %w", id, c.Size, uploadsError(err))
			}
		}
		st.Size = c.Size
	}
	room := c.MaxSize - st.Offset
	if st.Size != store.UnknownSize {
		room = st.Size - st.Offset
	}

	sum, crc := sha256.New(), store.NewCRC64NVME()
	if err := restore(sum, st.SHA256); err != nil {
		return store.Appended{}, fmt.Errorf("dirstore: tus upload %s: %w: %w", id, errDamaged, err)
	}
	if err := restore(crc, st.CRC64); err != nil {
		return store.Appended{}, fmt.Errorf("dirstore: tus upload %s: %w: %w", id, errDamaged, err)
	}
	n, rerr := s.writeInPlace(ctx, u.data, st.Offset, c.Body, room, sum, crc)
	keep := rerr == nil
	switch {
	case errors.Is(rerr, store.ErrUploadTooLarge):
		rerr = fmt.Errorf("%w: tus upload %s: the chunk is over the %d bytes left", rerr, id, room)
	case rerr != nil && c.KeepPartial && c.Verify == nil && n > 0:
		keep = true
	case rerr == nil && c.Verify != nil:
		rerr = c.Verify()
		keep = rerr == nil
	}
	if !keep {
		// What data holds past the offset is never read, but need not
		// take space either, unless it is the length's reservation.
		if u.st.Size == store.UnknownSize {
			u.data.Truncate(st.Offset)
		}
		return store.Appended{}, rerr
	}
	st.Offset += n
	if st.SHA256, err = marshal(sum); err == nil {
		st.CRC64, err = marshal(crc)
	}
	if err != nil {
		return store.Appended{}, fmt.Errorf("dirstore: tus upload %s: %w", id, err)
	}
	if st.Offset == st.Size && rerr == nil {
		done, err := s.publishTus(ctx, u, &st, sum, crc)
		if err != nil {
			return store.Appended{}, err
		}
		return store.Appended{Upload: st.resumable(id, time.Now(), s.uploadTTL()), Done: done}, nil
	}
	if err := s.writeProgress(u, &st); err != nil {
		return store.Appended{}, err
	}
	return store.Appended{Upload: st.resumable(id, time.Now(), s.uploadTTL())}, rerr
}

func restore(h hash.Hash, state []byte) error {
	return h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state)
}

func marshal(h hash.Hash) ([]byte, error) {
	return h.(encoding.BinaryMarshaler).MarshalBinary()
}

// publishTus publishes the upload's data under its name with Put, which
// links it by its descriptor, and removes the upload. A name taken
// meanwhile discards the upload, as Complete does.
func (s *Store) publishTus(ctx context.Context, u *tusUpload, st *tusState, sum hash.Hash, crc hash.Hash64) (*store.Finished, error) {
	var digest [sha256.Size]byte
	sum.Sum(digest[:0])
	// The file is as old as its completion, whenever its last bytes came
	// (a deferred length may be declared long after): retention counts
	// from here.
	now := time.Now()
	if err := u.dir.Chtimes(tusDataName, now, now); err != nil {
		return nil, fmt.Errorf("dirstore: tus upload %s: set its time: %w", u.id, err)
	}
	body := &tusBody{s: s, u: u, size: st.Size, sum: digest, crc: crc.Sum64()}
	err := s.Put(ctx, []store.File{{Name: st.Name, Body: body}})
	if err != nil {
		if errors.Is(err, store.ErrExists) || body.dropped {
			// The data's name is gone with the link: the upload cannot go
			// on, and its client starts again.
			s.removeTus(u)
		}
		return nil, fmt.Errorf("dirstore: tus upload %s: publish %q: %w", u.id, st.Name, err)
	}
	fi, err := u.data.Stat()
	if err != nil {
		return nil, mapError(st.Name, err)
	}
	done := &store.Finished{Info: info(st.Name, fi), SHA256: hex.EncodeToString(digest[:]), CRC64NVME: store.EncodeCRC64NVME(crc.Sum64())}
	// The file is published; what follows is best effort. The record
	// replaces the state before data's name goes, so that no Append
	// writes into the published file through that name.
	st.Done = &tusDone{Modified: fi.ModTime().UTC(), SHA256: done.SHA256, CRC64NVME: done.CRC64NVME}
	// Finished: its slot is free, and removing its record gives none back.
	u.st.Done = st.Done
	s.releaseUploadSlot()
	st.SHA256, st.CRC64 = nil, nil
	if err := s.writeTusState(u.dir, st); err != nil {
		s.removeTus(u)
		return done, nil
	}
	if err := u.dir.Remove(tusDataName); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.removeTus(u)
		return done, nil
	}
	// The record says Done, so progress is read no more.
	u.dir.Remove(tusProgressName)
	return done, nil
}

// tusBody is an upload's data as a store.FileBody, for Put.
type tusBody struct {
	s       *Store
	u       *tusUpload
	size    int64
	sum     [sha256.Size]byte
	crc     uint64
	dropped bool
}

func (b *tusBody) Size() int64               { return b.size }
func (b *tusBody) SHA256() [sha256.Size]byte { return b.sum }
func (b *tusBody) CRC64NVME() uint64         { return b.crc }
func (b *tusBody) Reader() *io.SectionReader { return io.NewSectionReader(b.u.data, 0, b.size) }
func (b *tusBody) File() *os.File            { return b.u.data }
func (b *tusBody) DropName() error {
	if err := b.u.dir.Remove(tusDataName); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	b.dropped = true
	return nil
}

// sweepTus removes resumable uploads idle since before cutoff, and
// creations a crash cut short, and counts in live the unfinished ones it
// keeps. An upload whose lock is held is in use and is left alone.
func (s *Store) sweepTus(cutoff time.Time, live *int64) int {
	return s.sweepArea(tusDir, cutoff, func(id string) (bool, error) {
		u, err := s.openTus(id)
		if err != nil {
			return false, err
		}
		defer u.close()
		switch {
		case u.st.Done != nil && u.mod.Before(cutoff):
			// A finished upload's record, which no Append holds.
			return s.removeTus(u) == nil, nil
		case u.st.Done != nil:
			return false, nil
		case u.mod.Before(cutoff) && u.lock() == nil && u.mod.Before(cutoff) && s.removeTus(u) == nil:
			return true, nil
		}
		*live++
		return false, nil
	})
}
