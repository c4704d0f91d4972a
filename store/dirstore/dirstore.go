// Package dirstore stores uploads in a local directory. Every operation goes
// through an os.Root, so nothing inside the directory (a planted symlink,
// say) can send a write outside it.
//
// Publishing is two-phase. Stage puts each body's bytes under a hidden
// staging name next to its destination: a hard link to the spool file when
// both are on one filesystem, a copy otherwise. Commit then links (no
// overwrite) or renames (overwrite) each staged file to its name. Readers
// therefore see a file complete or not at all, and a request whose later
// file fails takes back the earlier ones, and the directories it made.
package dirstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"spillway/store"
)

// Options configure a Store.
type Options struct {
	// Overwrite lets an upload replace an existing file. Off, a name that
	// exists is refused with store.ErrExists, race-free.
	Overwrite bool
	// Fsync makes Put fsync each file and its directories before returning,
	// so a returned Put survives a power cut. It covers multipart uploads'
	// parts, manifests and completed files too.
	Fsync bool
	// UploadTTL is how long a multipart upload may go without a part
	// before the sweep removes it. Zero means DefaultUploadTTL.
	UploadTTL time.Duration
	// FileMode is the permission bits of stored files, set on each file
	// in the store's directory, whatever the umask. Zero means
	// DefaultFileMode. A multipart upload's file stays 0600 until it is
	// completed.
	FileMode fs.FileMode
	// CaseSensitiveNames stores names that differ only in case side by
	// side. Off, such a name is refused with store.ErrExists (see
	// fold.go): it would collide on Windows and macOS.
	CaseSensitiveNames bool
	// MaxOpenUploads bounds the uploads open at once, multipart and tus
	// (created, not yet completed, aborted, terminated or swept); past it
	// CreateUpload and CreateResumable fail with store.ErrTooManyUploads.
	// Zero means no bound.
	MaxOpenUploads int
	// Retention, when set, is how long a file is kept after its
	// modification time: Sweep removes older files. Zero keeps them. The
	// modification time, not the change time: it is what listings show,
	// what a completed upload sets, and what a user can move (touch); the
	// change time moves with every chmod and link.
	Retention time.Duration
	// Buffers lends the working buffers of the copies into uploads' files
	// (tus chunks, multipart parts), so that they count against the
	// caller's memory budget: the spool's Buffer. release gives one back.
	// A buffer under minPipelined bytes says memory is short, and a copy
	// then takes no other. Nil allocates buffers of copyBuffer bytes.
	Buffers func() (buf []byte, release func())
}

// DefaultFileMode is the mode of stored files when Options.FileMode is zero.
const DefaultFileMode fs.FileMode = 0o644

// Store is a store.Store over one directory.
type Store struct {
	root *os.Root
	// top is the store's own folder, opened through root once for the
	// store's life: most uploads land in it, and opening it through the
	// root twice per upload (the check, the stage) was a good part of a
	// small upload's cost.
	top  *os.File
	opts Options
	// sys holds the system's fast paths, or their portable fallbacks.
	sys sysOps
	// unnamed: stage copies as O_TMPFILE files, linked into place through
	// /proc/self/fd: one directory operation per file instead of three,
	// and nothing for a crash to leave behind.
	unnamed bool
	// unnamedMode: the umask at Open leaves Options.FileMode whole, so
	// an O_TMPFILE file is made with it, and needs no chmod.
	unnamedMode bool
	// testHookSweepUploads, if set, is called at each sweep of uploads.
	testHookSweepUploads func()
	// sweeping keeps CreateUploads that arrive together from sweeping the
	// same uploads at once.
	sweeping atomic.Bool
	// lastSweep is when uploads were last swept, in Unix nanoseconds.
	lastSweep atomic.Int64
	// openUploads counts the uploads open in the directory, multipart and
	// tus, for Options.MaxOpenUploads; each sweep counts them again.
	openUploads atomic.Int64
	// expiry is Sweep's retention pass (sweep.go).
	expiry expirySweep
	// testHookReadDir, if set, is called with each directory List reads.
	testHookReadDir func(dir string)
	// testHookSyncDir, if set, is called with each directory syncDir
	// fsyncs.
	testHookSyncDir func(dir string)
	// folds indexes folders' case folds for the twin check (fold.go).
	folds *foldIndex
	// syncs shares directory fsyncs between concurrent uploads.
	syncs syncGroups
	// datasyncs shares the syncs of uploads' bytes between concurrent
	// uploads (syncData); dev is the filesystem it syncs.
	datasyncs syncGroups
	dev       uint64
	maxDirty  int64 // maxDirtySyncFS, but for tests
	// dirtyAt and dirtyMuch are the last reading of what is left to
	// write (muchDirty): when, in Unix nanoseconds, and whether it was
	// over maxDirty.
	dirtyAt   atomic.Int64
	dirtyMuch atomic.Bool
	// testHookSyncData, if set, is called before each sync of uploads'
	// bytes: of the whole filesystem (fs), or of one file.
	testHookSyncData func(fs bool)
}

var (
	_ store.Store        = (*Store)(nil)
	_ store.SpaceChecker = (*Store)(nil)
)

const (
	stagePrefix  = ".spillway-"
	stageSuffix  = ".tmp"
	backupSuffix = ".bak"
)

// Open creates dir if needed, opens it as the store's root, and removes
// staging files that a crashed process left behind, and multipart uploads
// idle for longer than Options.UploadTTL. It returns how many it removed.
func Open(dir string, opts Options) (*Store, int, error) {
	return open(dir, opts, defaultSys())
}

func open(dir string, opts Options, sys sysOps) (*Store, int, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, 0, fmt.Errorf("dirstore: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("dirstore: %w", err)
	}
	if opts.FileMode == 0 {
		opts.FileMode = DefaultFileMode
	}
	if opts.FileMode&^fs.ModePerm != 0 {
		root.Close()
		return nil, 0, fmt.Errorf("dirstore: file mode %v has bits other than permissions", opts.FileMode)
	}
	top, err := root.Open(".")
	if err != nil {
		root.Close()
		return nil, 0, fmt.Errorf("dirstore: %w", err)
	}
	s := &Store{root: root, top: top, opts: opts, sys: sys, unnamed: sys.unnamed(), folds: newFoldIndex(), maxDirty: maxDirtySyncFS}
	if mask, ok := sys.umask(); ok {
		s.unnamedMode = opts.FileMode&mask == 0
	}
	if fi, err := root.Stat("."); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			s.dev = uint64(st.Dev)
		}
	}
	n, err := s.sweep()
	if err != nil {
		s.Close()
		return nil, 0, err
	}
	return s, n + s.sweepUploads(), nil
}

// Close releases the root directory.
func (s *Store) Close() error {
	return errors.Join(s.top.Close(), s.root.Close())
}

// openFolder opens the folder name through the root; the store's own
// folder it lends instead (see Store.top). closeFolder gives either back.
func (s *Store) openFolder(name string) (*os.File, error) {
	if name == "." {
		return s.top, nil
	}
	return s.root.Open(name)
}

// closeFolder closes a folder from openFolder, unless it is the store's own.
func (s *Store) closeFolder(f *os.File) {
	if f != s.top {
		f.Close()
	}
}

// Capabilities implements store.Store: the handler takes the parts of
// multipart uploads and serves downloads, and space is finite.
func (s *Store) Capabilities() store.Caps {
	return store.Caps{SpaceChecker: s, Multipart: s, PartWriter: s, Resumable: s, ReservesUploads: reservesSpace}
}

// Check implements store.Store.
func (s *Store) Check(ctx context.Context, name string, size int64) error {
	if err := store.ValidateName(name); err != nil {
		return err
	}
	if !s.opts.CaseSensitiveNames {
		if err := s.checkTwins(name); err != nil {
			return err
		}
	}
	found, isDir, err := s.statName(name)
	switch {
	case err != nil:
		return mapError(name, err)
	case found && isDir:
		return fmt.Errorf("%w: %q is a directory", store.ErrExists, name)
	case found && !s.opts.Overwrite:
		return fmt.Errorf("%w: %q", store.ErrExists, name)
	}
	return s.CheckSpace(ctx, size)
}

// statName stats name, following a symlink inside the root, as
// root.Stat does: a name in the store's own folder, through Store.top
// without following, and only a symlink through the root. A name not there
// is found false, with no error: most names checked are new.
func (s *Store) statName(name string) (found, isDir bool, err error) {
	if !strings.Contains(name, "/") {
		var st unix.Stat_t
		switch err := unix.Fstatat(int(s.top.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); {
		case err == unix.ENOENT:
			return false, false, nil
		case err != nil:
			return false, false, &fs.PathError{Op: "stat", Path: name, Err: err}
		case st.Mode&unix.S_IFMT != unix.S_IFLNK:
			return true, st.Mode&unix.S_IFMT == unix.S_IFDIR, nil
		}
	}
	fi, err := s.root.Stat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, false, nil
	case err != nil:
		return false, false, err
	}
	return true, fi.IsDir(), nil
}

// CheckSpace implements store.SpaceChecker. A failure to ask the filesystem
// is not reported: the write itself will tell. It asks through the store's
// folder's descriptor, without walking the directory's path.
func (s *Store) CheckSpace(_ context.Context, size int64) error {
	if size <= 0 {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(s.top.Fd()), &st); err == nil {
		if free := int64(st.Bavail) * int64(st.Bsize); free < size {
			return fmt.Errorf("%w: %d bytes needed, %d available", store.ErrInsufficientStorage, size, free)
		}
	}
	return nil
}

// Put implements store.Store.
func (s *Store) Put(ctx context.Context, files []store.File) (err error) {
	staged := make([]*staged, 0, len(files))
	var made madeDirs
	defer func() {
		// Take back what was published, newest first, then drop staging,
		// then the directories made for it.
		for i := len(staged) - 1; i >= 0; i-- {
			if err != nil {
				staged[i].rollback()
			}
			staged[i].close()
		}
		if err != nil {
			made.remove(s.root)
		}
	}()
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		st, err := s.stage(f, &made)
		if err != nil {
			return err
		}
		staged = append(staged, st)
	}
	for _, st := range staged {
		if err := st.syncData(ctx); err != nil {
			return err
		}
	}
	for _, st := range staged {
		if err := st.commit(s.opts.Overwrite); err != nil {
			return err
		}
	}
	if s.opts.Fsync {
		return s.syncDirs(ctx, files)
	}
	return nil
}

// staged is one body under its staging name in its destination directory.
type staged struct {
	s         *Store
	made      *madeDirs // the calling Put's or Complete's
	name      string
	dirName   string   // the destination's parent, as a name under the root
	dir       *os.File // dirName, opened through the root
	base      string
	tmp       string
	f         *os.File // held open (and locked) for copied bodies
	data      *os.File // the file that holds the bytes: f, or a linked spool file
	unnamed   bool     // f is an O_TMPFILE file with no name yet
	committed bool
	backup    string // overwrite mode: a link to the file that was replaced
}

func (s *Store) stage(f store.File, made *madeDirs) (_ *staged, err error) {
	st, err := s.newStaged(f.Name, made)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			st.close()
		}
	}()

	if fb, ok := f.Body.(store.FileBody); ok {
		if src := fb.File(); src != nil {
			linked, err := s.stageLink(st, src, fb.DropName)
			if err != nil {
				return nil, err
			}
			if linked {
				return st, nil
			}
		}
	}
	return st, s.stageCopy(st, func(w io.Writer) error {
		return writeBody(w, f.Body)
	})
}

// writeBody writes b's bytes to w: through b's own WriteTo when it has one
// (a spooled body's, with its pooled buffer), else through a buffer of up
// to copyBuffer bytes.
func writeBody(w io.Writer, b store.Body) error {
	if wt, ok := b.(io.WriterTo); ok {
		_, err := wt.WriteTo(w)
		return err
	}
	buf := make([]byte, max(1, min(b.Size(), copyBuffer)))
	// Hiding w's ReadFrom makes the copy go through buf.
	_, err := io.CopyBuffer(struct{ io.Writer }{w}, b.Reader(), buf)
	return err
}

// newStaged opens name's directory, making it and its parents if needed,
// for a staged file that has no bytes yet. The directories it makes are
// added to made, for the caller to remove if it fails, even when
// newStaged itself does.
func (s *Store) newStaged(name string, made *madeDirs) (*staged, error) {
	if err := store.ValidateName(name); err != nil {
		return nil, err
	}
	dirName, base := path.Split(name)
	dirName = strings.TrimSuffix(dirName, "/")
	if dirName == "" {
		dirName = "."
	}
	dir, err := s.openDir(dirName, made)
	if err != nil {
		return nil, mapError(name, err)
	}
	return &staged{s: s, made: made, name: name, dirName: dirName, dir: dir, base: base}, nil
}

// stageName returns a new hidden staging name. An O_TMPFILE copy, linked
// under its own name, needs none.
func stageName() string { return stagePrefix + rand.Text() + stageSuffix }

// testHookMkdir, if set, is called after each Mkdir that openDir makes.
var testHookMkdir func(name string, err error)

// maxDirAttempts bounds how many times a call makes a directory again that
// other calls keep removing from under it.
const maxDirAttempts = 16

// openDir opens the directory dirName, making it and any missing parents,
// and adds those it made to made, parents first.
//
// A directory this finds already there may be another call's, made a
// moment ago, and removed again when that call fails: between finding a
// parent and making its child, or between making a directory and opening
// it. The step then fails with ENOENT and openDir starts again from the
// top. The same can happen later, while the directory is still empty; see
// staged.inDir.
func (s *Store) openDir(dirName string, made *madeDirs) (*os.File, error) {
	for attempt := 1; ; attempt++ {
		dir, err := s.tryOpenDir(dirName, made)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == maxDirAttempts {
			return dir, err
		}
	}
}

func (s *Store) tryOpenDir(dirName string, made *madeDirs) (*os.File, error) {
	if dirName != "." {
		for i := 0; i <= len(dirName); i++ {
			if i < len(dirName) && dirName[i] != '/' {
				continue
			}
			// One Mkdir per level, rather than MkdirAll, to know which
			// directories this call made.
			var err error
			if s.opts.CaseSensitiveNames {
				err = s.root.Mkdir(dirName[:i], 0o755)
			} else {
				err = s.mkdirNoTwin(dirName[:i])
			}
			if testHookMkdir != nil {
				testHookMkdir(dirName[:i], err)
			}
			switch {
			case err == nil:
				*made = append(*made, dirName[:i])
			case !errors.Is(err, fs.ErrExist):
				// ENOTDIR (a file on the way) or an escaping symlink,
				// both for mapError; ENOENT for a parent just removed;
				// ErrExists for a case twin.
				return nil, err
			}
		}
	}
	if dirName == "." {
		return s.top, nil
	}
	dir, err := s.root.Open(dirName)
	if err != nil {
		return nil, err
	}
	if fi, err := dir.Stat(); err != nil || !fi.IsDir() {
		dir.Close()
		if err == nil {
			err = &fs.PathError{Op: "open", Path: dirName, Err: syscall.ENOTDIR}
		}
		return nil, err
	}
	return dir, nil
}

// inDir runs op, which gives st's directory its first entry from this
// call (the staging file, or the file itself when that has no staging
// name), retrying it in the directory made again if another call removed
// the directory meanwhile.
//
// Until op succeeds the directory may be empty, and a call that made it,
// and then failed, removes it: a failed call cannot know that this one
// found its directory and is about to use it. op then fails (linkat and
// openat with ENOENT; O_TMPFILE with EPERM on ext4), st.dir is found
// removed, and the directory is made again, this time by this call. Once
// op succeeds, the entry keeps the directory, and each of its parents,
// from being removed by anyone: rmdir refuses a directory that is not
// empty.
func (st *staged) inDir(op func(dirfd int) error) error {
	for attempt := 1; ; attempt++ {
		err := op(int(st.dir.Fd()))
		if err == nil || attempt == maxDirAttempts || !st.dirGone() {
			return err
		}
		dir, err := st.s.openDir(st.dirName, st.made)
		if err != nil {
			return err
		}
		st.s.closeFolder(st.dir)
		st.dir = dir
	}
}

// dirGone reports whether st.dir was removed (or replaced) since it was
// opened.
func (st *staged) dirGone() bool {
	fi, err := st.dir.Stat()
	if err != nil {
		return false
	}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok && sys.Nlink == 0 {
		return true
	}
	now, err := st.s.root.Stat(st.dirName)
	return errors.Is(err, fs.ErrNotExist) || err == nil && !os.SameFile(fi, now)
}

// madeDirs lists the directories one Put or Complete made for its names,
// so that a call that fails can leave the store as it found it.
type madeDirs []string

// remove removes the directories made, deepest first, each only if it is
// still empty: another call may have published a file in one meanwhile. It
// uses rmdir, which refuses a directory that is not empty, and removes
// nothing but a directory; such a refusal is no error here. A directory
// removed while another call is about to use it is made again by that
// call (see staged.inDir).
func (m madeDirs) remove(root *os.Root) {
	dirs := slices.Clone(m)
	slices.SortFunc(dirs, func(a, b string) int {
		if d := strings.Count(b, "/") - strings.Count(a, "/"); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	for _, d := range slices.Compact(dirs) {
		parent, err := root.Open(path.Dir(d))
		if err != nil {
			continue
		}
		unix.Unlinkat(int(parent.Fd()), path.Base(d), unix.AT_REMOVEDIR)
		parent.Close()
	}
}

// stageLink hard-links the spool file into place: the bytes are written once.
// It reports false, with no error, when linking is impossible (another
// filesystem, a swept spool name, a policy) and a copy should be made.
//
// It links the file the spooler wrote and hashed, by its descriptor: the
// spool file's name is in a directory others may write to, and whatever
// that name leads to by now is not what the digest describes. Only once the
// file is out of the spool directory, its name there dropped by dropName,
// does it get the store's mode; until then it is 0600, and so are its bytes.
func (s *Store) stageLink(st *staged, src *os.File, dropName func() error) (bool, error) {
	st.tmp = stageName()
	err := st.inDir(func(dirfd int) error {
		return s.linkFile(src, dirfd, st.tmp)
	})
	if err != nil {
		return false, nil
	}
	if err := dropName(); err != nil {
		return false, fmt.Errorf("dirstore: %q: %w", st.name, err)
	}
	if err := src.Chmod(s.opts.FileMode); err != nil {
		return false, fmt.Errorf("dirstore: chmod %q: %w", st.name, err)
	}
	st.data = src
	return true, nil
}

// linkFile gives the open file f the name name in the directory dirfd,
// by its descriptor (see sysOps.linkFile).
func (s *Store) linkFile(f *os.File, dirfd int, name string) error {
	return s.sys.linkFile(f, dirfd, name)
}

// stageCopy stages the bytes that write writes, for bodies that cannot be
// linked and for files assembled from parts.
func (s *Store) stageCopy(st *staged, write func(io.Writer) error) error {
	if s.unnamed {
		// Unnamed, the file is no one else's to open yet: it may have its
		// mode from the start. The umask is read once, at Open; one
		// changed since makes files less readable, never more.
		perm := uint32(0o600)
		if s.unnamedMode {
			perm = uint32(s.opts.FileMode)
		}
		var fd int
		err := st.inDir(func(dirfd int) (err error) {
			fd, err = s.sys.openUnnamed(dirfd, perm)
			return err
		})
		if err == nil {
			st.f, st.unnamed, st.tmp = os.NewFile(uintptr(fd), st.name), true, ""
			if !s.unnamedMode {
				if err := st.f.Chmod(s.opts.FileMode); err != nil {
					return fmt.Errorf("dirstore: chmod %q: %w", st.name, err)
				}
			}
			// In overwrite mode the file has a staging name for a moment
			// (commit): locked like a named staging file, so that a sweep
			// leaves it alone. Otherwise it is linked under its own name.
			if s.opts.Overwrite {
				if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
					return fmt.Errorf("dirstore: lock %q: %w", st.name, err)
				}
			}
			if err := write(st.f); err != nil {
				return mapError(st.name, err)
			}
			st.data = st.f
			return nil
		}
		// Not every filesystem has O_TMPFILE: fall back to a named file.
	}
	// Through st.dir, the directory that commit links from, not by name.
	st.tmp = stageName()
	var fd int
	err := st.inDir(func(dirfd int) (err error) {
		fd, err = unix.Openat(dirfd, st.tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		st.tmp = ""
		return mapError(st.name, err)
	}
	dst := os.NewFile(uintptr(fd), st.name)
	st.f = dst
	// The lock tells a sweeping process that this staging file is live.
	if err := unix.Flock(int(dst.Fd()), unix.LOCK_EX); err != nil {
		st.unlinkTmp()
		return fmt.Errorf("dirstore: lock %q: %w", st.name, err)
	}
	// Set here, where the file lands, and whatever the umask.
	if err := dst.Chmod(s.opts.FileMode); err != nil {
		st.unlinkTmp()
		return fmt.Errorf("dirstore: chmod %q: %w", st.name, err)
	}
	if err := write(dst); err != nil {
		st.unlinkTmp()
		return mapError(st.name, err)
	}
	st.data = dst
	return nil
}

// syncData makes st's bytes durable, when the store is durable, before
// commit gives them their name.
func (st *staged) syncData(ctx context.Context) error {
	if !st.s.opts.Fsync || st.data == nil {
		return nil
	}
	if err := st.s.syncData(ctx, st.data); err != nil {
		return mapError(st.name, err)
	}
	return nil
}

// errSyncAlone tells the uploads of a group that its leader did not sync
// the filesystem for them: each fsyncs its own file.
var errSyncAlone = errors.New("dirstore: each file syncs on its own")

// maxDirtySyncFS is how many bytes may wait to be written, system-wide,
// for a group of uploads to share one syncfs: syncfs writes every dirty
// page of the filesystem, other uploads' and other processes' too, so a
// small upload would wait for all of them. Above it each upload fsyncs
// its own file, at once with the others.
const maxDirtySyncFS = 16 << 20

// dirtyEvery is how long one reading of what is left to write serves
// uploads deciding whether to join a group: reading it costs a parse of
// /proc/meminfo. A group's leader reads it afresh before its syncfs.
const dirtyEvery = 10 * time.Millisecond

// muchDirty reports whether more than maxDirty bytes were left to write at
// the last reading, reading again when it is older than dirtyEvery; true
// when the system cannot tell.
func (s *Store) muchDirty() bool {
	now := time.Now().UnixNano()
	if last := s.dirtyAt.Load(); now-last >= int64(dirtyEvery) && s.dirtyAt.CompareAndSwap(last, now) {
		n, ok := s.sys.dirty()
		s.dirtyMuch.Store(!ok || n > s.maxDirty)
	}
	return s.dirtyMuch.Load()
}

// syncData returns once f's bytes and metadata are durable. Uploads that
// wait at once share one sync, as databases commit groups of transactions
// together: while one group's sync runs, the uploads that arrive wait, and
// then one of them runs a syncfs for all (syncGroups), which covers every
// file written before it started. One upload alone fsyncs its file, which
// costs less than a syncfs. Each upload covered by a syncfs then asks for
// its file's own write errors (sysOps.writebackErr), since syncfs reports
// an error of the filesystem once, to one caller. While much is left to
// write, uploads fsync their own files at once, without waiting for each
// other: a group's members would wait for its leader's fsync first.
func (s *Store) syncData(ctx context.Context, f *os.File) error {
	if s.muchDirty() || !s.onStoreFS(f) {
		return s.syncFile(f)
	}
	var own bool // this caller led its group and fsynced f
	err := s.datasyncs.do(ctx, "", func(batch int) error {
		if batch > 1 {
			n, ok := s.sys.dirty()
			s.dirtyAt.Store(time.Now().UnixNano())
			s.dirtyMuch.Store(!ok || n > s.maxDirty)
			if ok && n <= s.maxDirty {
				if s.testHookSyncData != nil {
					s.testHookSyncData(true)
				}
				return s.sys.syncFS(f)
			}
		}
		own = true
		if err := s.syncFile(f); err != nil {
			return err
		}
		if batch > 1 {
			return errSyncAlone
		}
		return nil
	})
	switch {
	case own && errors.Is(err, errSyncAlone):
		return nil
	case own:
		return err
	case errors.Is(err, errSyncAlone):
		return s.syncFile(f)
	case err != nil:
		return err
	}
	return s.sys.writebackErr(f)
}

// syncFile fsyncs f alone.
func (s *Store) syncFile(f *os.File) error {
	if s.testHookSyncData != nil {
		s.testHookSyncData(false)
	}
	return f.Sync()
}

// onStoreFS reports whether f is on the filesystem of the store's
// directory, the one its uploads' shared syncs cover: a folder inside it
// may be another filesystem's mount point.
func (s *Store) onStoreFS(f *os.File) bool {
	var st unix.Stat_t
	return fdErr(f, func(fd int) error { return unix.Fstat(fd, &st) }) == nil && uint64(st.Dev) == s.dev
}

func (st *staged) commit(overwrite bool) error {
	// Unless names are case-sensitive, the folder is locked from the
	// check for a case twin to the link (fold.go).
	var held *heldFolder
	release := func() {
		if held != nil {
			held.unlock()
			held = nil
		}
	}
	defer release()
	guard := func(dirfd int) error {
		if st.s.opts.CaseSensitiveNames || held != nil {
			return nil
		}
		h, err := st.s.folds.hold(dirfd)
		if err != nil {
			return err
		}
		held = h
		twin, err := h.twin(st.base)
		switch {
		case err != nil:
			release()
			return err
		case twin != "":
			release()
			return twinError(st.name, path.Join(path.Dir(st.name), twin))
		}
		return nil
	}
	// published records the commit's changes in the folder's fold index
	// while the lock is still held: added is the name it added, if any.
	published := func(added string) {
		if held != nil {
			held.changed(added, "")
		}
	}
	if st.unnamed {
		// Give the unnamed file its name: the final one without overwrite
		// (EEXIST is the race-free 409), a staging one to rename from with.
		// Nothing of this call's is in the directory yet: it may have to
		// be made again.
		target := st.base
		if overwrite {
			target = stageName()
		}
		if err := st.inDir(func(dirfd int) error {
			// A folder removed meanwhile fails here, and inDir makes it
			// again: the lock is taken again in the new one.
			if err := guard(dirfd); err != nil {
				return err
			}
			err := st.s.linkFile(st.f, dirfd, target)
			if err != nil {
				release()
			}
			return err
		}); err != nil {
			return mapError(st.name, err)
		}
		st.unnamed = false
		if !overwrite {
			st.committed = true
			published(st.base)
			return nil
		}
		st.tmp = target
	}
	// The staging name keeps st.dir from being removed from here on.
	fd := int(st.dir.Fd())
	if err := guard(fd); err != nil {
		return mapError(st.name, err)
	}
	if !overwrite {
		if err := unix.Linkat(fd, st.tmp, fd, st.base, 0); err != nil {
			return mapError(st.name, err)
		}
		st.committed = true
		st.unlinkTmp()
		published(st.base)
		return nil
	}
	// Keep a link to whatever is replaced, so a rollback can restore it.
	backup := stagePrefix + rand.Text() + backupSuffix
	switch err := unix.Linkat(fd, st.base, fd, backup, 0); {
	case err == nil:
		st.backup = backup
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EISDIR):
		return fmt.Errorf("%w: %q is a directory", store.ErrExists, st.name)
	case !errors.Is(err, syscall.ENOENT):
		return mapError(st.name, err)
	}
	if err := unix.Renameat(fd, st.tmp, fd, st.base); err != nil {
		st.dropBackup()
		return mapError(st.name, err)
	}
	st.tmp = ""
	st.committed = true
	if st.backup == "" {
		published(st.base)
	} else {
		published("") // replaced: no name added
	}
	return nil
}

// rollback takes back a committed file, restoring what it replaced.
func (st *staged) rollback() {
	if !st.committed {
		return
	}
	fd := int(st.dir.Fd())
	if st.backup != "" {
		if unix.Renameat(fd, st.backup, fd, st.base) == nil {
			st.backup = ""
		}
	} else {
		unix.Unlinkat(fd, st.base, 0)
	}
	st.committed = false
}

func (st *staged) unlinkTmp() {
	if st.tmp != "" {
		unix.Unlinkat(int(st.dir.Fd()), st.tmp, 0)
		st.tmp = ""
	}
}

func (st *staged) dropBackup() {
	if st.backup != "" {
		unix.Unlinkat(int(st.dir.Fd()), st.backup, 0)
		st.backup = ""
	}
}

func (st *staged) close() {
	st.unlinkTmp()
	st.dropBackup()
	if st.f != nil {
		st.f.Close()
	}
	st.s.closeFolder(st.dir)
}

// syncDirs fsyncs every directory on the way to each file, so that new
// directory entries, and new directories, are as durable as the data.
func (s *Store) syncDirs(ctx context.Context, files []store.File) error {
	var dirs []string
	for _, f := range files {
		for d := path.Dir(f.Name); ; d = path.Dir(d) {
			dirs = append(dirs, d)
			if d == "." {
				break
			}
		}
	}
	slices.Sort(dirs)
	for _, d := range slices.Compact(dirs) {
		if err := s.syncDirCtx(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) syncDir(name string) error { return s.syncDirCtx(context.Background(), name) }

// syncDirCtx returns once an fsync of the directory name that started
// after the call has returned: one such fsync is shared by every upload
// waiting for it (syncGroups).
func (s *Store) syncDirCtx(ctx context.Context, name string) error {
	return s.syncs.do(ctx, name, func(int) error {
		d, err := s.openFolder(name)
		if err != nil {
			return mapError(name, err)
		}
		defer s.closeFolder(d)
		if s.testHookSyncDir != nil {
			s.testHookSyncDir(name)
		}
		if err := d.Sync(); err != nil {
			return fmt.Errorf("dirstore: sync dir %q: %w", name, err)
		}
		return nil
	})
}

// List implements store.Store. Hidden entries (staging files, upload
// state) and names that would not pass ValidateName are left out.
//
// It walks the tree in name order, one directory at a time, and stops once
// the page is full: only the directories that can hold names of this page
// are read, those below the prefix that sort after opts.After. Of each
// directory it keeps only the entries the rest of the page can use (see
// scanDir), so a page costs the same in a folder of any size.
func (s *Store) List(ctx context.Context, opts store.ListOptions) ([]store.Info, bool, error) {
	if err := store.ValidatePrefix(opts.Prefix); err != nil {
		return nil, false, err
	}
	l := &lister{ctx: ctx, s: s, opts: opts, limit: opts.PageLimit()}
	// Every name the prefix selects is in the folder it names, if any.
	top := "."
	if i := strings.LastIndexByte(opts.Prefix, '/'); i >= 0 {
		top = opts.Prefix[:i]
	}
	err := l.walk(top)
	if errors.Is(err, errPageFull) {
		return l.infos, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("dirstore: list: %w", err)
	}
	return l.infos, false, nil
}

// errPageFull ends a walk that found one name more than its page holds.
var errPageFull = errors.New("page full")

type lister struct {
	ctx   context.Context
	s     *Store
	opts  store.ListOptions
	limit int
	infos []store.Info
	dents []byte // scanDir's getdents buffer
}

// listEntry is a directory entry with the key it sorts by: its name, or
// for a directory its name and a slash. Every name below a directory
// begins with that key, so walking each directory's entries in key order
// yields the names in byte order: "a-b", "a.txt", "a/x".
type listEntry struct {
	key string
	dir bool
}

// walk appends the page's files in dir, and below it, in name order.
func (l *lister) walk(dir string) error {
	if err := l.ctx.Err(); err != nil {
		return err
	}
	if l.s.testHookReadDir != nil {
		l.s.testHookReadDir(dir)
	}
	from := "" // the key of the last entry walked in an earlier scan
	for {
		// One name more than the page holds tells that more follow.
		entries, more, err := l.scanDir(dir, from, l.limit-len(l.infos)+1)
		if err != nil {
			if dir != "." && gone(err) {
				// Removed while walking, or a prefix's folder that is not one.
				return nil
			}
			return err
		}
		for _, e := range entries {
			if e.dir {
				if err := l.walk(strings.TrimSuffix(e.key, "/")); err != nil {
					return err
				}
				continue
			}
			if store.ValidateName(e.key) != nil {
				continue
			}
			fi, err := l.s.root.Lstat(e.key)
			if err != nil || !fi.Mode().IsRegular() {
				continue // removed or replaced while walking
			}
			if len(l.infos) == l.limit {
				return errPageFull
			}
			l.infos = append(l.infos, info(e.key, fi))
		}
		if !more {
			return nil
		}
		// Folders without files, or names skipped above, left the page
		// short: scan again for the entries after these.
		from = entries[len(entries)-1].key
	}
}

// wants reports whether e is, or may hold, a name of the page.
func (l *lister) wants(e listEntry) bool {
	p, after := l.opts.Prefix, l.opts.After
	if !e.dir {
		return strings.HasPrefix(e.key, p) && e.key > after
	}
	// A folder whose name breaks the rules holds no name that keeps them.
	if store.ValidateName(strings.TrimSuffix(e.key, "/")) != nil {
		return false
	}
	if !strings.HasPrefix(e.key, p) && !strings.HasPrefix(p, e.key) {
		return false
	}
	// Every name below sorts before after, unless after is itself below.
	return after < e.key || strings.HasPrefix(after, e.key)
}

// gone reports errors that mean a directory is not there to list: removed,
// a file, or a symlink that leads out of the root.
func gone(err error) bool {
	var errno syscall.Errno
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) ||
		!errors.As(err, &errno) && isPathError(err)
}

// Open implements store.Store.
func (s *Store) Open(_ context.Context, name string) (store.Info, io.ReadSeekCloser, error) {
	if err := store.ValidateName(name); err != nil {
		return store.Info{}, nil, err
	}
	f, err := s.root.Open(name)
	if err != nil {
		return store.Info{}, nil, mapError(name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return store.Info{}, nil, mapError(name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return store.Info{}, nil, fmt.Errorf("%w: %q", store.ErrNotFound, name)
	}
	return info(name, fi), f, nil
}

// Stat implements store.Store.
func (s *Store) Stat(_ context.Context, name string) (store.Info, error) {
	if err := store.ValidateName(name); err != nil {
		return store.Info{}, err
	}
	fi, err := s.root.Stat(name)
	if err != nil {
		return store.Info{}, mapError(name, err)
	}
	if !fi.Mode().IsRegular() {
		return store.Info{}, fmt.Errorf("%w: %q", store.ErrNotFound, name)
	}
	return info(name, fi), nil
}

func info(name string, fi fs.FileInfo) store.Info {
	return store.Info{
		Name:     name,
		Size:     fi.Size(),
		Modified: fi.ModTime(),
		ETag:     fmt.Sprintf(`"%x-%x"`, fi.ModTime().UnixNano(), fi.Size()),
	}
}

// sweep removes staging and backup files left by a process that died
// mid-publish. A staging file still in use is locked (its own lock, or the
// spool file's lock on the same inode) and is left alone.
func (s *Store) sweep() (int, error) {
	removed := 0
	err := fs.WalkDir(s.root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		base := d.Name()
		if d.IsDir() {
			if name != "." && strings.HasPrefix(base, ".") {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(base, stagePrefix) ||
			!(strings.HasSuffix(base, stageSuffix) || strings.HasSuffix(base, backupSuffix)) {
			return nil
		}
		f, err := s.root.Open(name)
		if err != nil {
			return nil
		}
		defer f.Close()
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			return nil
		}
		if s.root.Remove(name) == nil {
			removed++
		}
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("dirstore: sweep: %w", err)
	}
	return removed, nil
}

// mapError turns filesystem errors into the store's errors.
func mapError(name string, err error) error {
	var errno syscall.Errno
	switch {
	case errors.Is(err, store.ErrExists):
		return err
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %q", store.ErrNotFound, name)
	case errors.Is(err, fs.ErrExist), errors.Is(err, syscall.ENOTDIR),
		errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.ENOTEMPTY):
		return fmt.Errorf("%w: %q conflicts with an existing file or directory", store.ErrExists, name)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%w: %w", store.ErrInsufficientStorage, err)
	case errors.Is(err, syscall.ENAMETOOLONG), errors.Is(err, syscall.ELOOP):
		return fmt.Errorf("%w: %q: %w", store.ErrInvalidName, name, err)
	case !errors.As(err, &errno) && isPathError(err):
		// os.Root refuses paths that escape it with an unexported error
		// that carries no errno: a symlink planted inside the directory.
		return fmt.Errorf("%w: %q resolves outside the upload directory", store.ErrInvalidName, name)
	}
	return fmt.Errorf("dirstore: %q: %w", name, err)
}

func isPathError(err error) bool {
	var pe *fs.PathError
	var le *os.LinkError
	return errors.As(err, &pe) || errors.As(err, &le)
}
