package dirstore

// Resumable (tus) uploads live beside the multipart ones, one directory
// each:
//
//	.spillway-uploads/tus/{id}/state.json   offset, declaration, hash states
//	.spillway-uploads/tus/{id}/data         the bytes received, in place
//
// data is written in place at the offset and its flock is the upload's
// lock, held while a chunk is appended; state.json is replaced by a rename
// once the chunk's bytes are in data, so a crash at any moment leaves the
// offset of the last whole chunk, and whatever data holds past it is
// written over by the next one. The last chunk publishes data itself,
// linked under the file's name by its descriptor, as Put links a spooled
// body: the bytes are written once. A finished upload keeps only its
// state.json, which says what the file became, until the sweep finds it
// idle.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
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
	tusDir       = uploadsDir + "/tus"
	tusStateName = "state.json"
	tusDataName  = "data"
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
	if err := ctx.Err(); err != nil {
		return store.Resumable{}, err
	}
	if err := s.CheckSpace(ctx, r.Size); err != nil {
		return store.Resumable{}, fmt.Errorf("dirstore: create tus upload: %w", err)
	}
	s.maybeSweepUploads()
	if err := s.takeUploadSlot(); err != nil {
		return store.Resumable{}, fmt.Errorf("dirstore: create tus upload: %w", err)
	}
	defer func() {
		if err != nil {
			s.releaseUploadSlot()
		}
	}()
	sum, _ := sha256.New().(encoding.BinaryMarshaler).MarshalBinary()
	crc, _ := store.NewCRC64NVME().(encoding.BinaryMarshaler).MarshalBinary()
	st := tusState{Name: r.Name, Size: r.Size, Metadata: r.Metadata, Created: time.Now().UTC().Round(0), SHA256: sum, CRC64: crc}

	tmp, err := s.stageUpload(tusDir)
	if err != nil {
		return store.Resumable{}, fmt.Errorf("dirstore: create tus upload: %w", err)
	}
	defer func() {
		if err != nil {
			s.root.RemoveAll(tmp)
		}
	}()
	// A known length is reserved now, as a multipart upload's is; a
	// deferred one when a PATCH declares it.
	if err := s.createData(tmp+"/"+tusDataName, max(r.Size, 0)); err != nil {
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

// writeTusState replaces dir's state.json with st.
func (s *Store) writeTusState(dir *os.Root, st *tusState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("dirstore: tus state: %w", err)
	}
	if err := replaceFile(dir, stagePrefix+rand.Text()+stageSuffix, tusStateName, data, s.opts.Fsync); err != nil {
		return fmt.Errorf("dirstore: tus state: %w", err)
	}
	if s.opts.Fsync {
		d, err := dir.Open(".")
		if err != nil {
			return fmt.Errorf("dirstore: tus state: %w", err)
		}
		defer d.Close()
		if err := d.Sync(); err != nil {
			return fmt.Errorf("dirstore: tus state: sync: %w", err)
		}
	}
	return nil
}

// tusUpload is an open resumable upload.
type tusUpload struct {
	id   string
	dir  *os.Root
	data *os.File // nil until lock opens it
	st   tusState
	mod  time.Time // state.json's modification time
}

func (u *tusUpload) close() {
	if u.data != nil {
		u.data.Close()
	}
	u.dir.Close()
}

// openTus opens the upload with this ID and reads its state. An ID that is
// not of our format never reaches the filesystem.
func (s *Store) openTus(id string) (*tusUpload, error) {
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
	u := &tusUpload{id: id, dir: dir}
	if err := u.readState(); err != nil {
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
	u.st, u.mod = st, fi.ModTime()
	return nil
}

// lock opens data and takes the upload's lock without waiting: a second
// request gets ErrLocked at once rather than queueing behind a body that
// may take minutes. It reads the state again under the lock.
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

// Resumable implements store.ResumableStore. The state is replaced whole
// by a rename, so reading it needs no lock.
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
	u, err := s.openTus(id)
	if err != nil {
		return err
	}
	defer u.close()
	if u.st.Done != nil {
		// Only the record is left, which no Append changes.
		return s.removeTus(u)
	}
	if err := u.lock(); err != nil {
		return err
	}
	return s.removeTus(u)
}

// Append implements store.ResumableStore.
func (s *Store) Append(ctx context.Context, id string, c store.Chunk) (store.Appended, error) {
	u, err := s.openTus(id)
	if err != nil {
		return store.Appended{}, err
	}
	defer u.close()
	if u.st.Done != nil {
		return store.AppendFinished(u.st.resumable(id, u.mod, s.uploadTTL()), c)
	}
	if err := u.lock(); err != nil {
		return store.Appended{}, err
	}
	st := u.st
	if st.Done != nil {
		// Finished while this opened it: data is the published file now,
		// and is not written.
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
	if s.opts.Fsync {
		if err := u.data.Sync(); err != nil {
			return store.Appended{}, fmt.Errorf("dirstore: tus upload %s: sync: %w", id, err)
		}
	}
	if err := s.writeTusState(u.dir, &st); err != nil {
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
	}
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
