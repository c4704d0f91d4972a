package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

const lsUsage = `usage: spillway ls [flags] [PREFIX]

Lists the files stored on the server whose names begin with PREFIX (a
folder such as 2026/, or the start of a name), sorted by name, following
every page of the listing: size, time of upload (UTC) and name, one file a
line, then the count and total size on stderr. With --json, one JSON object
a line on stdout, {"name","size","modified"} as the server gives them, for
scripts (jq reads them as they come).

flags:
`

// ls is `spillway ls`.
func ls(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	var srv serverFlags
	var asJSON bool
	var pageSize int
	fs := newFlagSet("ls", lsUsage, stderr)
	srv.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print one JSON object per file and line")
	// Hidden from the usage: tests page through small listings with it;
	// the server's largest page (its default) is what users want.
	fs.IntVar(&pageSize, "page-size", 0, "")
	pos, err := parseArgs(fs, args)
	if err == nil {
		switch {
		case len(pos) > 1:
			err = errors.New("want at most one PREFIX")
		case pageSize < 0 || pageSize > 1000:
			err = errors.New("--page-size must be from 1 to 1000")
		default:
			err = srv.resolve(getenv)
		}
	}
	if err != nil {
		return usageError(stderr, "ls", err)
	}
	prefix := ""
	if len(pos) == 1 {
		prefix = pos[0]
	}
	c, ok := srv.client(ctx, "ls", stderr)
	if !ok {
		return exitUsage
	}

	enc := json.NewEncoder(stdout)
	var count, total int64
	for f, err := range c.List(ctx, prefix, pageSize) {
		if err != nil {
			if ctx.Err() != nil {
				fmt.Fprintf(stderr, "spillway ls: interrupted after %d files\n", count)
				return exitInterrupted
			}
			fmt.Fprintf(stderr, "spillway ls: %v\n", err)
			return exitFailed
		}
		count++
		total += f.Size
		if asJSON {
			if err := enc.Encode(f); err != nil {
				fmt.Fprintf(stderr, "spillway ls: %v\n", err)
				return exitFailed
			}
			continue
		}
		if _, err := fmt.Fprintf(stdout, "%10s  %s  %s\n", formatBytes(f.Size), f.Modified.UTC().Format(time.DateTime), f.Name); err != nil {
			fmt.Fprintf(stderr, "spillway ls: %v\n", err)
			return exitFailed
		}
	}
	if !asJSON {
		noun := "files"
		if count == 1 {
			noun = "file"
		}
		fmt.Fprintf(stderr, "%d %s, %s\n", count, noun, formatBytes(total))
	}
	return exitOK
}
