package client

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// File is a local file and the name it gets on the server.
type File struct {
	Path string
	Name string
	Size int64
}

// Walk lists the regular files under root, each named by its path relative
// to root, slash-separated, behind prefix ("" for none). A root that is a
// regular file is listed under its base name. Anything else (symbolic
// links, devices, sockets) is returned in skipped, since its bytes are not
// a file's. A root that is a symbolic link is followed.
func Walk(root, prefix string) (files []File, skipped []string, err error) {
	prefix = strings.Trim(filepath.ToSlash(prefix), "/")
	name := func(rel string) string {
		// macOS may hand out names decomposed (NFD); the server takes
		// only NFC.
		rel = norm.NFC.String(rel)
		if prefix == "" {
			return rel
		}
		return path.Join(prefix, rel)
	}
	info, err := os.Stat(root)
	if err != nil {
		return nil, nil, err
	}
	if info.Mode().IsRegular() {
		return []File{{Path: root, Name: name(filepath.Base(root)), Size: info.Size()}}, nil, nil
	}
	if !info.IsDir() {
		return nil, []string{root}, nil
	}
	// WalkDir reports a symbolic link as itself, even as the root.
	top, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, nil, err
	}
	err = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(top, p)
		if err != nil {
			return err
		}
		shown := filepath.Join(root, rel)
		if !d.Type().IsRegular() {
			skipped = append(skipped, shown)
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, File{Path: shown, Name: name(filepath.ToSlash(rel)), Size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("walk %s: %w", root, err)
	}
	return files, skipped, nil
}
