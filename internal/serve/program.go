package serve

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"spillway/internal/buildinfo"
	"spillway/spool"
)

// RunFunc is a program's body: it serves until ctx is done. ready, when not
// nil, receives the address it listens on.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready chan<- string) error

// Main is a program's main: --version, then run until SIGINT or SIGTERM,
// and an exit status of 1 with the error on stderr when run fails.
func Main(name string, run RunFunc) {
	if buildinfo.Requested(os.Args[1:]) {
		fmt.Println(name, buildinfo.Read())
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Log writes the start-up line that tools and tests read the URL from,
// with attrs (the configuration, say) after the listener's own, and warns
// when the server listens beyond loopback without a token.
func (l Listening) Log(log *slog.Logger, token string, attrs ...any) {
	bi := buildinfo.Read()
	log.Info("spillway local server listening", append([]any{"url", "http://" + l.Addr.String(),
		"version", bi.Version, "revision", bi.Revision,
		"open_files_soft", l.OpenFilesSoft, "open_files_hard", l.OpenFilesHard, "max_connections", l.MaxConnections},
		attrs...)...)
	if token == "" && !IsLoopback(l.Addr) {
		log.Warn("listening beyond loopback without --token: anyone who can reach this address can upload and download")
	}
}

// Stopped logs the program's last line: what the spooler still holds,
// which is nothing after a clean shutdown.
func Stopped(log *slog.Logger, s spool.Stats) {
	log.Info("stopped", "spool_files_open", s.OpenFiles, "memory_bodies", s.MemoryBodies,
		"disk_bodies", s.DiskBodies, "spool_errors", s.Errors, "cleanup_failures", s.CleanupFailures)
}
