package dirstore

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// dentsSize is the getdents buffer of a listing: a few hundred entries a
// system call.
const dentsSize = 16 << 10

// scanDir returns, in key order, the first n entries of dir that l wants
// and whose keys sort after from (when from is not empty), and whether the
// directory holds more of them.
//
// A directory comes in no order, so finding its first n entries means
// reading all of it. scanDir reads it in getdents batches and keeps at
// most 2n entries at a time, cutting back to the first n whenever it has
// 2n; an entry that sorts after the nth kept is dropped before its key is
// even made a string. A page thus holds and allocates about n entries per
// directory level, not the directory's size.
func (l *lister) scanDir(dir, from string, n int) ([]listEntry, bool, error) {
	f, err := l.s.root.Open(dir)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	fd := int(f.Fd())

	base := dir + "/" // what every key in dir begins with
	if dir == "." {
		base = ""
	}
	// The bounds that the prefix and the cursor set on keys in dir, as
	// keys relative to dir; "" when they set none here.
	prefix, _ := strings.CutPrefix(l.opts.Prefix, base)
	if !strings.HasPrefix(l.opts.Prefix, base) {
		prefix = "" // dir is below the prefix: every name in it has it
	}
	after, ok := strings.CutPrefix(l.opts.After, base)
	if !ok {
		after = ""
	}
	if from != "" {
		from = from[len(base):]
	}

	if l.dents == nil {
		l.dents = make([]byte, dentsSize)
	}
	var kept []listEntry
	bound, bounded := "", false // the nth kept key, once 2n were kept
	for {
		nr, err := unix.Getdents(fd, l.dents)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, false, &fs.PathError{Op: "getdents", Path: dir, Err: err}
		}
		if nr == 0 {
			break
		}
		for b := l.dents[:nr]; len(b) > 0; {
			// struct linux_dirent64: ino, off, reclen, type, name.
			if len(b) < 19 {
				return nil, false, fmt.Errorf("dirstore: %s: short dirent", dir)
			}
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return nil, false, fmt.Errorf("dirstore: %s: bad dirent length %d", dir, reclen)
			}
			typ, name := b[18], b[19:reclen]
			b = b[reclen:]
			if i := slices.Index(name, 0); i >= 0 {
				name = name[:i]
			}
			if len(name) == 0 || name[0] == '.' {
				continue // ".", "..", and hidden entries: staging files, upload state
			}
			isDir, ok := direntType(fd, typ, name)
			if !ok {
				continue
			}
			switch {
			case from != "" && cmpKey(name, isDir, from) <= 0:
				continue
			case bounded && cmpKey(name, isDir, bound) >= 0:
				continue
			case prefix != "" && !hasPrefixKey(name, isDir, prefix) && !(isDir && keyIsPrefixOf(name, prefix)):
				continue
			case after != "" && cmpKey(name, isDir, after) <= 0 && !(isDir && keyIsPrefixOf(name, after)):
				continue
			}
			e := listEntry{key: base + string(name), dir: isDir}
			if isDir {
				e.key += "/"
			}
			if !l.wants(e) {
				continue
			}
			kept = append(kept, e)
			if len(kept) == 2*n {
				sortEntries(kept)
				clear(kept[n:])
				kept = kept[:n]
				bound, bounded = kept[n-1].key[len(base):], true
			}
		}
	}
	sortEntries(kept)
	more := bounded || len(kept) > n
	if len(kept) > n {
		kept = kept[:n]
	}
	return kept, more, nil
}

func sortEntries(es []listEntry) {
	slices.SortFunc(es, func(a, b listEntry) int { return strings.Compare(a.key, b.key) })
}

// direntType tells a directory from a regular file, asking the file system
// when the entry does not say; ok is false for anything else (symlinks
// among them).
func direntType(dirfd int, typ byte, name []byte) (isDir, ok bool) {
	switch typ {
	case unix.DT_DIR:
		return true, true
	case unix.DT_REG:
		return false, true
	case unix.DT_UNKNOWN:
		var st unix.Stat_t
		if unix.Fstatat(dirfd, string(name), &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
			return false, false
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			return true, true
		case unix.S_IFREG:
			return false, true
		}
	}
	return false, false
}

// cmpKey compares an entry's key (name, and a slash for a directory) with
// s, as strings.Compare would, without making the key a string.
func cmpKey(name []byte, isDir bool, s string) int {
	k := min(len(name), len(s))
	switch {
	case string(name[:k]) < s[:k]:
		return -1
	case string(name[:k]) > s[:k]:
		return 1
	case len(name) > k:
		return 1
	}
	rest := s[k:]
	switch {
	case !isDir && rest == "":
		return 0
	case !isDir:
		return -1
	case rest == "" || rest[0] < '/':
		return 1
	case rest[0] > '/' || len(rest) > 1:
		return -1
	}
	return 0
}

// hasPrefixKey reports whether an entry's key begins with p.
func hasPrefixKey(name []byte, isDir bool, p string) bool {
	switch {
	case len(p) <= len(name):
		return string(name[:len(p)]) == p
	case isDir && len(p) == len(name)+1:
		return string(name) == p[:len(name)] && p[len(name)] == '/'
	}
	return false
}

// keyIsPrefixOf reports whether s begins with a directory's key (name and
// a slash): whether s is, or names something below, that directory.
func keyIsPrefixOf(name []byte, s string) bool {
	return len(s) > len(name) && s[len(name)] == '/' && string(name) == s[:len(name)]
}
