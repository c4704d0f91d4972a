package dirstore

import (
	"slices"
	"strings"
)

// scanDir returns, in key order, the first n entries of dir that l wants
// and whose keys sort after from (when from is not empty), and whether the
// directory holds more of them.
//
// A directory comes in no order, so finding its first n entries means
// reading all of it. scanDir reads it in batches and keeps at
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

	var kept []listEntry
	bound, bounded := "", false // the nth kept key, once 2n were kept
	err = l.s.sys.readDir(f, &l.dents, func(name []byte, isDir bool) {
		if len(name) == 0 || name[0] == '.' {
			return // ".", "..", and hidden entries: staging files, upload state
		}
		switch {
		case from != "" && cmpKey(name, isDir, from) <= 0:
			return
		case bounded && cmpKey(name, isDir, bound) >= 0:
			return
		case prefix != "" && !hasPrefixKey(name, isDir, prefix) && !(isDir && keyIsPrefixOf(name, prefix)):
			return
		case after != "" && cmpKey(name, isDir, after) <= 0 && !(isDir && keyIsPrefixOf(name, after)):
			return
		}
		e := listEntry{key: base + string(name), dir: isDir}
		if isDir {
			e.key += "/"
		}
		if !l.wants(e) {
			return
		}
		kept = append(kept, e)
		if len(kept) == 2*n {
			sortEntries(kept)
			clear(kept[n:])
			kept = kept[:n]
			bound, bounded = kept[n-1].key[len(base):], true
		}
	})
	if err != nil {
		return nil, false, err
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
