// Command loadtest is Spillway's bounded load test. It drives a local server
// on loopback with many concurrent clients uploading a mix of sizes (1 KiB to
// 64 MiB) as raw PUTs with a Content-Length, raw chunked PUTs and multipart
// POSTs of one to three files, and checks that:
//
//   - no request gets a 5xx (nor any other status but 201),
//   - every 201 is right: the sha256 the server answers equals the one the
//     client computed while sending, and so does the SHA-256 of the stored
//     file, read back from the upload directory,
//   - nothing leaks: the spool dir ends empty, no .spillway-* staging file
//     and no file of a failed request is left, the server's open file
//     descriptors return to where they started,
//   - the server's peak RSS (VmHWM, and VmRSS sampled while it runs) stays
//     within the memory budget plus a fixed 48 MiB overhead.
//
// It builds nothing. Given --server (a binary from `go build ./localserver`)
// it starts that server on 127.0.0.1:0 with its own temporary upload and
// spool directories and stops it with SIGTERM at the end. Given --url it
// targets a server that is already running, and then needs --directory (to
// verify and delete stored files; the API has no DELETE) and, for the RSS,
// fd and spool checks, --pid and --spool-dir.
//
// Every verified file is deleted at once, so the disk holds at most one
// request's bytes per client; every loop is bounded by --duration and by
// --max-requests and --max-bytes. It exits 1 when a check fails and 2 when
// the test cannot run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(2)
	}
	cfg.Progress = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(2)
	}
	sum.Write(os.Stdout)
	if !sum.OK() {
		os.Exit(1)
	}
}
