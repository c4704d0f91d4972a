package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"spillway/client"
)

const getUsage = `usage: spillway get [flags] NAME [DEST]

Downloads the stored file NAME to DEST (default: its base name in the
current directory; into DEST when DEST is a directory). Redirects to where
the bytes are (S3's presigned URLs) are followed without the server's
credentials. The bytes go to DEST.part, with DEST.part.json beside it, and
DEST appears only once they are whole: an interrupted get, run again,
resumes with a Range request if the server still holds the same version of
the file (If-Range on its ETag), and starts over if not. The SHA-256 of the
bytes is printed; with --sha256 (as push printed it) a download that does
not match is removed and the status is 1.

flags:
`

// get is `spillway get`.
func get(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) int {
	var srv serverFlags
	var want string
	var force, quiet bool
	fs := newFlagSet("get", getUsage, stderr)
	srv.register(fs)
	fs.StringVar(&want, "sha256", "", "the file's expected SHA-256, in hex: the download must match it")
	fs.BoolVar(&force, "force", false, "replace DEST if it exists")
	fs.BoolVar(&quiet, "quiet", false, "print only errors")
	pos, err := parseArgs(fs, args)
	if err == nil {
		switch {
		case len(pos) < 1 || len(pos) > 2:
			err = errors.New("want NAME and at most one DEST")
		case want != "" && !isSHA256(want):
			err = errors.New("--sha256 must be 64 hex digits")
		default:
			err = srv.resolve(getenv)
		}
	}
	if err != nil {
		return usageError(stderr, "get", err)
	}
	name := pos[0]
	dest := path.Base(name)
	if len(pos) == 2 {
		dest = pos[1]
		if fi, err := os.Stat(dest); (err == nil && fi.IsDir()) || strings.HasSuffix(dest, "/") || strings.HasSuffix(dest, string(filepath.Separator)) {
			dest = filepath.Join(dest, path.Base(name))
		}
	}
	if _, err := os.Lstat(dest); err == nil && !force {
		fmt.Fprintf(stderr, "spillway get: %s exists; remove it or give --force\n", dest)
		return exitFailed
	}
	c, ok := srv.client(ctx, "get", stderr)
	if !ok {
		return exitUsage
	}

	res, err := c.Download(ctx, name, dest, client.DownloadOptions{SHA256: want})
	switch {
	case err == nil:
	case ctx.Err() != nil:
		fmt.Fprintf(stderr, "interrupted; run the same command again to resume (%s of %s is in %s)\n",
			formatBytes(res.Resumed+res.Received), name, dest+".part")
		return exitInterrupted
	default:
		fmt.Fprintf(stderr, "spillway get: %v\n", err)
		if part, _ := client.PartPaths(dest); exists(part) {
			fmt.Fprintf(stderr, "%s is kept; run the same command again to resume\n", part)
		}
		return exitFailed
	}
	if !quiet {
		how := ""
		if res.Redirected {
			how = ", from the redirect"
		}
		if res.Resumed > 0 {
			how += fmt.Sprintf(", resumed: %s kept, %s received now", formatBytes(res.Resumed), formatBytes(res.Received))
		}
		fmt.Fprintf(stderr, "got %s -> %s: %s in %s, %s%s\n", name, dest, formatBytes(res.Size),
			res.Elapsed.Round(1e6), rate(res.Received, res.Elapsed), how)
	}
	check := ""
	if want != "" {
		check = " (matches --sha256)"
	}
	fmt.Fprintf(stderr, "sha256 %s%s\n", res.SHA256, check)
	return exitOK
}

func isSHA256(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 32
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
