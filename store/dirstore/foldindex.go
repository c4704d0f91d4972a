package dirstore

import (
	"fmt"
	"hash/maphash"
	"os"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// foldIndex remembers, per folder, the case folds of its names, so that
// the check for a case twin does not read the whole folder at every
// upload: in a folder of many files that read was most of an upload's
// cost, and it grew with every file stored.
//
// An entry is only trusted while the folder's stat is exactly the one
// recorded with it, and it is recorded only by this store right after a
// change of its own under the folder's flock (heldFolder.changed). That
// change stamps the folder's mtime with a value no change before it left
// and no later change leaves by itself: strictly later than the mtime it
// found, and, as the kernel stamps changes with its clock's last tick,
// never that tick. So any later change to the folder's entries, by another
// process or by hand, leaves an mtime other than the recorded one (barring
// a step of the clock back onto that very nanosecond, or a hand setting
// the mtime back), and the folder is read again. A folder's timestamps are not trusted otherwise:
// read by the clock's tick, two changes within one tick can leave one
// timestamp, and that is the change another process made after the read.
// Where the stamp does not hold to the nanosecond (a filesystem with
// coarser timestamps), nothing is recorded.
//
// An entry counts 64-bit hashes of folds, not names. It may count more
// names than the folder holds, never fewer: a fold it counts (a twin, a
// name since removed, or a hash shared with another fold) is confirmed by
// reading the folder, so only a name missing from it could let a twin in.
type foldIndex struct {
	seed maphash.Seed
	mu   sync.Mutex
	dirs map[folderID]*foldedDir
	// locks holds the mutexes of the folders being held (hold).
	locks map[folderID]*folderMutex
	// names counts the names held in dirs, bounded by maxIndexedNames.
	names int
	// testHookRead, if set, is called at each read of a whole folder.
	testHookRead func()
	// testHookChanged, if set, is called by changed before it records a
	// change; testHookWait when a check waits for a change's record.
	testHookChanged, testHookWait func()
}

// maxIndexedNames bounds the index's memory across folders; a folder that
// would take it past is not indexed (read at every check, as without the
// index). An indexed name costs a map entry of a hash and a count.
const maxIndexedNames = 1 << 18

// folderID names a folder whatever path reaches it.
type folderID struct{ dev, ino uint64 }

// folderStamp is what must be unchanged for an entry to hold.
type folderStamp struct {
	mtime, ctime unix.Timespec
	size         int64
	nlink        uint64
}

type foldedDir struct {
	stamp folderStamp
	folds map[uint64]int32 // fold hash → how many names have it
	// indexed: stamp is the folder's stat when this was indexed; not
	// set for a folder just read, which is not indexed until changed.
	indexed bool
}

func newFoldIndex() *foldIndex {
	return &foldIndex{seed: maphash.MakeSeed(), dirs: make(map[folderID]*foldedDir), locks: make(map[folderID]*folderMutex)}
}

func statFolder(dirfd int) (folderID, folderStamp, error) {
	var st unix.Stat_t
	if err := unix.Fstat(dirfd, &st); err != nil {
		return folderID{}, folderStamp{}, fmt.Errorf("stat folder: %w", err)
	}
	return folderID{uint64(st.Dev), st.Ino},
		folderStamp{mtime: st.Mtim, ctime: st.Ctim, size: st.Size, nlink: uint64(st.Nlink)}, nil
}

// lookup reports whether the folder dirfd is indexed as it is now and, if
// so, how many of its names may have base's fold. It takes no lock: an
// entry describes the folder at one stat, and lookup checks that stat.
// When the stat no longer matches, known says whether there is an entry
// at all, and n is its count.
func (x *foldIndex) lookup(dirfd int, base string) (id folderID, indexed, known bool, n int32, err error) {
	id, stamp, err := statFolder(dirfd)
	if err != nil {
		return id, false, false, 0, err
	}
	h := x.hash(base)
	x.mu.Lock()
	defer x.mu.Unlock()
	d, ok := x.dirs[id]
	if !ok {
		return id, false, false, 0, nil
	}
	return id, d.stamp == stamp, true, d.folds[h], nil
}

// twin returns a name in the folder dirfd, other than base and other than
// a hidden one, whose case fold equals base's; "" if none. It reads the
// folder only when the index cannot rule a twin out. It takes no lock, and
// serves Check, which only refuses early: the commit checks again under
// the folder's lock.
func (x *foldIndex) twin(dirfd int, base string) (string, error) {
	for round := 0; ; round++ {
		id, indexed, known, n, err := x.lookup(dirfd, base)
		if err != nil || indexed && onlyItself(dirfd, base, n) {
			return "", err
		}
		if round == twinRounds {
			break
		}
		// Most often the entry does not hold because an upload of this
		// store is changing the folder right now, or just did. The entry
		// still counts every name that this store's uploads recorded; a
		// name that someone else gave the folder since is the commit's to
		// find, under the lock. Under a stream of uploads into one folder
		// the entry is seldom current at the moment of a Check, and
		// reading the folder instead made each upload's cost grow with
		// the folder.
		m := x.inUse(id)
		if m == nil {
			if round == 0 {
				// The change seen may have been recorded since, and its
				// upload gone: look once more before reading.
				continue
			}
			break
		}
		if known && onlyItself(dirfd, base, n) {
			x.release(id, m)
			return "", nil
		}
		// Without an entry to go by, wait for the upload to record its
		// change (its mutex, not the flock), and look again.
		if x.testHookWait != nil {
			x.testHookWait()
		}
		m.Lock()
		m.Unlock()
		x.release(id, m)
	}
	names, err := x.readNames(dirfd)
	if err != nil {
		return "", err
	}
	return twinAmong(names, base), nil
}

// twinRounds bounds how often twin looks at the index before it reads the
// folder instead, when other uploads keep changing it.
const twinRounds = 3

// onlyItself reports whether the n names an entry counts with base's fold
// leave no room for a twin: none, or one that is base itself. An entry
// counts every name in the folder (and perhaps some since removed), so if
// base is there, it is one of the n.
func onlyItself(dirfd int, base string, n int32) bool {
	switch n {
	case 0:
		return true
	case 1:
		var st unix.Stat_t
		return unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
	}
	return false
}

func (x *foldIndex) hash(name string) uint64 {
	var buf [256]byte
	return maphash.Bytes(x.seed, appendFold(buf[:0], name))
}

// appendFold appends to b a key that is the same for two names exactly
// when strings.EqualFold calls them equal: each rune becomes the least
// rune of its simple case folding orbit, an ASCII upper-case letter its
// lower case (so that most names are their own key), and invalid UTF-8
// becomes U+FFFD, as EqualFold decodes it.
func appendFold(b []byte, s string) []byte {
	for _, r := range s {
		switch {
		case 'a' <= r && r <= 'z' && r != 'k' && r != 's' || r < 'A' || 'Z' < r && r < 'a':
			// ASCII with an orbit of its own case pair; 'k' and 's' have a
			// third member (U+212A KELVIN SIGN, U+017F LONG S).
			b = append(b, byte(r))
			continue
		}
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		if 'A' <= least && least <= 'Z' {
			least += 'a' - 'A'
		}
		b = utf8.AppendRune(b, least)
	}
	return b
}

// heldFolder is a folder whose flock this store holds: while it does, no
// store changes the folder's names but through it.
type heldFolder struct {
	x  *foldIndex
	fd int
	id folderID
	m  *folderMutex
	// d is the folder's entry as it was when the lock was taken (indexed,
	// or read under the lock), or nil when not known.
	d *foldedDir
}

// hold takes the exclusive lock under which a folder's entries are checked
// for twins and changed: the flock, which other processes respect, after
// a mutex of this store's, so that of its uploads into one folder only one
// at a time waits in flock; the others wait in the Go scheduler, which
// costs no thread each. The mutex is also what keeps this store's uploads
// apart when they share one descriptor of the folder (Store.top): flock
// would let a second lock on the same open file through.
func (x *foldIndex) hold(dirfd int) (*heldFolder, error) {
	id, _, err := statFolder(dirfd)
	if err != nil {
		return nil, fmt.Errorf("dirstore: lock folder: %w", err)
	}
	m := x.acquire(id)
	m.Lock()
	h := &heldFolder{x: x, fd: dirfd, id: id, m: m}
	if err := unix.Flock(dirfd, unix.LOCK_EX); err != nil {
		h.release()
		return nil, fmt.Errorf("dirstore: lock folder: %w", err)
	}
	return h, nil
}

// folderMutex is a store's own lock of a folder, kept while in use.
type folderMutex struct {
	sync.Mutex
	users int // under foldIndex.mu
}

// unlock releases the lock.
func (h *heldFolder) unlock() {
	unix.Flock(h.fd, unix.LOCK_UN)
	h.release()
}

func (h *heldFolder) release() {
	h.m.Unlock()
	h.x.release(h.id, h.m)
}

// acquire returns the folder's mutex, made if needed, counted as in use
// until release.
func (x *foldIndex) acquire(id folderID) *folderMutex {
	x.mu.Lock()
	defer x.mu.Unlock()
	m := x.locks[id]
	if m == nil {
		m = &folderMutex{}
		x.locks[id] = m
	}
	m.users++
	return m
}

// inUse is acquire for a folder some upload of this store holds or waits
// for; nil if none.
func (x *foldIndex) inUse(id folderID) *folderMutex {
	x.mu.Lock()
	defer x.mu.Unlock()
	m := x.locks[id]
	if m != nil {
		m.users++
	}
	return m
}

func (x *foldIndex) release(id folderID, m *folderMutex) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if m.users--; m.users == 0 {
		delete(x.locks, id)
	}
}

// current returns the folder's index entry if it holds now. While the
// lock is held, only this held folder changes it, under the index's mutex.
func (h *heldFolder) current() (*foldedDir, error) {
	id, stamp, err := statFolder(h.fd)
	if err != nil {
		return nil, err
	}
	h.x.mu.Lock()
	defer h.x.mu.Unlock()
	d, ok := h.x.dirs[id]
	if !ok || d.stamp != stamp {
		return nil, nil
	}
	return d, nil
}

// load looks the folder up in the index before a change that needs no
// check, a removal, so that changed can record it.
func (h *heldFolder) load() {
	if h.d == nil {
		h.d, _ = h.current()
	}
}

// twin is foldIndex.twin under the lock. A folder it has to read, not
// changed by any store while the lock is held, is indexed once this store
// changes it.
func (h *heldFolder) twin(base string) (string, error) {
	if h.d == nil {
		d, err := h.current()
		if err != nil {
			return "", err
		}
		h.d = d
	}
	if h.d != nil && onlyItself(h.fd, base, h.d.count(h.x.hash(base))) {
		return "", nil
	}
	names, err := h.x.readNames(h.fd)
	if err != nil {
		return "", err
	}
	if h.d == nil && len(names) < maxIndexedNames {
		h.d = &foldedDir{folds: make(map[uint64]int32, len(names)+1)}
		for _, n := range names {
			if n[0] != '.' {
				h.d.folds[h.x.hash(n)]++
			}
		}
	}
	return twinAmong(names, base), nil
}

// count returns how many names with the fold hash k may be in the
// folder. The holder of the folder's lock calls it without the index's
// mutex: only the holder writes the entry.
func (d *foldedDir) count(k uint64) int32 { return d.folds[k] }

// changed records that this store added the name added and removed the
// name removed ("" for none) in the held folder, and stamps the folder so
// that every other change is seen (see foldIndex). It is called after the
// change, before the lock is released. A folder neither indexed nor read
// under the lock before the change stays unindexed, but is stamped all the
// same, for the other stores on the directory.
func (h *heldFolder) changed(added, removed string) {
	if h.x.testHookChanged != nil {
		h.x.testHookChanged()
	}
	id, stamp, ok := stampFolder(h.fd)
	d := h.d
	h.d = nil
	if d == nil {
		return
	}
	x := h.x
	x.mu.Lock()
	defer x.mu.Unlock()
	if d.indexed && x.dirs[id] != d {
		return
	}
	// Out of the index (with any stale entry of the folder) while it
	// changes, back in if it fits.
	if old, ok := x.dirs[id]; ok {
		delete(x.dirs, id)
		x.names -= len(old.folds)
	}
	if !ok {
		return
	}
	if added != "" && added[0] != '.' {
		d.folds[x.hash(added)]++
	}
	if removed != "" && removed[0] != '.' {
		if k := x.hash(removed); d.folds[k] > 1 {
			d.folds[k]--
		} else {
			delete(d.folds, k)
		}
	}
	if x.names+len(d.folds) > maxIndexedNames {
		return
	}
	d.stamp, d.indexed = stamp, true
	x.dirs[id] = d
	x.names += len(d.folds)
}

// readNames returns the names in the folder dirfd.
func (x *foldIndex) readNames(dirfd int) ([]string, error) {
	if x.testHookRead != nil {
		x.testHookRead()
	}
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open folder: %w", err)
	}
	d := os.NewFile(uintptr(fd), ".")
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read folder: %w", err)
	}
	return names, nil
}

// twinAmong returns the name of names, other than base and other than a
// hidden one, whose case fold equals base's; "" if none.
func twinAmong(names []string, base string) string {
	for _, n := range names {
		if n != base && n != "" && n[0] != '.' && strings.EqualFold(n, base) {
			return n
		}
	}
	return ""
}
