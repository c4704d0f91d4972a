package main

import (
	"context"
	"errors"
	"fmt"
	"io"
)

const rmUsage = `usage: spillway rm [flags] NAME...

Removes the stored files NAME... from the server, one after the other. A
name that is not there is an error (404 not_found) and the others are still
removed; the status is 1 when any failed.

flags:
`

// rm is `spillway rm`.
func rm(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) int {
	var srv serverFlags
	var quiet bool
	fs := newFlagSet("rm", rmUsage, stderr)
	srv.register(fs)
	fs.BoolVar(&quiet, "quiet", false, "print only errors")
	names, err := parseArgs(fs, args)
	if err == nil {
		if len(names) == 0 {
			err = errors.New("want at least one NAME")
		} else {
			err = srv.resolve(getenv)
		}
	}
	if err != nil {
		return usageError(stderr, "rm", err)
	}
	c, ok := srv.client(ctx, "rm", stderr)
	if !ok {
		return exitUsage
	}
	failed := 0
	for i, name := range names {
		err := c.Delete(ctx, name)
		switch {
		case err == nil:
			if !quiet {
				fmt.Fprintf(stderr, "removed %s\n", name)
			}
		case ctx.Err() != nil:
			fmt.Fprintf(stderr, "spillway rm: interrupted after %d of %d names\n", i-failed, len(names))
			return exitInterrupted
		default:
			failed++
			fmt.Fprintf(stderr, "spillway rm: %v\n", err)
		}
	}
	if failed > 0 {
		return exitFailed
	}
	return exitOK
}
