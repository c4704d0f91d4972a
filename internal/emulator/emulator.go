// Package emulator is the local Function URL emulator as a program: it
// serves a Lambda function binary behind a local Function URL, each
// request running the function, for real, under the Runtime Interface
// Emulator, as a deployed Function URL would run it. That replaces `sam
// local start-api`, which needs Docker, serves no Function URL, and fails
// binary bodies. cmd/funcurl runs it, and so does `localserver
// --function`. It builds no store, no API handler and no metrics: the
// function has its own.
package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"spillway/funcurl"
	"spillway/internal/config"
	"spillway/internal/serve"
)

// errShutdown is the cause of the invocations cut when the grace period
// is over.
var errShutdown = errors.New("the Function URL emulator is shutting down")

// Run serves cfg.Function until ctx is done. It logs to stderr, which the
// function's output goes to as well; ready, when not nil, receives the
// address it listens on.
func Run(ctx context.Context, cfg config.Config, stderr io.Writer, ready chan<- string) error {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	bootstrap, rie, err := binaries(cfg)
	if err != nil {
		return err
	}
	// A Function URL takes no event over funcurl.MaxRequestSize; the
	// upload size limit is the function's to apply, per file, as it is
	// when deployed.
	spooler, swept, err := cfg.Spooler(funcurl.MaxRequestSize, log)
	if err != nil {
		return err
	}
	// The emulator passes its environment, this process's, to the
	// function (AWS_* for the S3 endpoint and credentials, say), with the
	// settings in the SPILLWAY_* variables the function reads; the
	// function spools into the same directory.
	fnCfg := cfg
	fnCfg.SpoolDir = spooler.Dir()
	r, err := funcurl.StartRIE(ctx, funcurl.RIEConfig{
		Path:      rie,
		Bootstrap: bootstrap,
		Env:       config.FunctionEnv(os.Environ(), fnCfg),
		Output:    stderr,
	})
	if err != nil {
		return err
	}
	defer r.Close()
	log.Info("function URL emulator started", "function", bootstrap, "rie", rie, "rie_pid", r.Pid(),
		"invocations", "one at a time")
	h := funcurl.New(funcurl.Config{Spooler: spooler, Invoker: r, Logger: log, ReadTimeout: cfg.ReadTimeout})

	err = serve.Run(ctx, serve.Config{
		Addr:    cfg.Addr,
		Handler: h,
		Logger:  log,
		Refuse:  h.Unavailable,
		// Invocations do not end with their clients (see funcurl); once
		// the grace period is over, stopping the emulator ends them.
		AbortCause:      errShutdown,
		OnAbort:         func() { r.Close() },
		CORSOrigins:     cfg.CORSOrigins,
		MaxConnections:  cfg.MaxConnections,
		MaxUploads:      cfg.MaxUploads,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Listening: func(l serve.Listening) {
			// The local server's line, which tools read the URL from.
			l.Log(log, cfg.Token, "config", cfg, "orphans_swept", swept)
			if ready != nil {
				ready <- l.Addr.String()
			}
		},
	})
	if err != nil {
		return err
	}
	serve.Stopped(log, spooler.Stats())
	return nil
}

// binaries checks the function binary and finds the emulator's, before
// anything is made, and returns their absolute paths.
func binaries(cfg config.Config) (bootstrap, rie string, err error) {
	if cfg.Bucket == "" {
		return "", "", errors.New("--function: the function stores files in S3 and needs --bucket (or SPILLWAY_BUCKET)")
	}
	bootstrap, err = filepath.Abs(cfg.Function)
	if err != nil {
		return "", "", fmt.Errorf("--function: %w", err)
	}
	if fi, err := os.Stat(bootstrap); err != nil {
		return "", "", fmt.Errorf("--function: %w (build it with `make build`)", err)
	} else if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", "", fmt.Errorf("--function: %s is not an executable file", bootstrap)
	}
	rie, err = exec.LookPath(cfg.RIE)
	if err != nil {
		return "", "", fmt.Errorf("--rie: %w (`make emulate` installs the pinned emulator into bin/)", err)
	}
	rie, err = filepath.Abs(rie)
	if err != nil {
		return "", "", fmt.Errorf("--rie: %w", err)
	}
	return bootstrap, rie, nil
}
