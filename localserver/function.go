package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"spillway/funcurl"
	"spillway/spool"
)

// With --function, the server is a local Function URL: each request runs
// the Lambda function binary, for real, under the Runtime Interface
// Emulator, as a deployed Function URL would run it. That replaces
// `sam local start-api`, which needs Docker, serves no Function URL, and
// fails binary bodies.

// functionURL is the emulator's handler and the emulator behind it.
type functionURL struct {
	*funcurl.Handler
	rie *funcurl.RIE
}

// Close stops the emulator and the function; it is safe on nil and twice.
func (f *functionURL) Close() error {
	if f == nil {
		return nil
	}
	return f.rie.Close()
}

// spoolLimit is the largest body the server spools. A Function URL takes
// no event over funcurl.MaxRequestSize; --max-upload-size is the
// function's to apply, per file, as it is when deployed.
func spoolLimit(cfg config) int64 {
	if cfg.Function != "" {
		return funcurl.MaxRequestSize
	}
	return cfg.MaxUploadSize
}

// startFunction starts the emulator for --function, or returns nil
// without it. The emulator passes its environment, this process's, to the
// function (AWS_* for the S3 endpoint and credentials, say), with this
// server's settings in the SPILLWAY_* variables the function reads.
func startFunction(ctx context.Context, cfg config, spooler *spool.Spooler, log *slog.Logger, output io.Writer) (*functionURL, error) {
	if cfg.Function == "" {
		return nil, nil
	}
	if cfg.Bucket == "" {
		return nil, errors.New("--function: the function stores files in S3 and needs --bucket (or SPILLWAY_BUCKET)")
	}
	bootstrap, err := filepath.Abs(cfg.Function)
	if err != nil {
		return nil, fmt.Errorf("--function: %w", err)
	}
	if fi, err := os.Stat(bootstrap); err != nil {
		return nil, fmt.Errorf("--function: %w (build it with `make build`)", err)
	} else if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("--function: %s is not an executable file", bootstrap)
	}
	rie, err := exec.LookPath(cfg.RIE)
	if err != nil {
		return nil, fmt.Errorf("--rie: %w (`make emulate` installs the pinned emulator into bin/)", err)
	}
	rie, err = filepath.Abs(rie)
	if err != nil {
		return nil, fmt.Errorf("--rie: %w", err)
	}
	r, err := funcurl.StartRIE(ctx, funcurl.RIEConfig{
		Path:      rie,
		Bootstrap: bootstrap,
		Env:       functionEnv(os.Environ(), cfg, spooler.Dir()),
		Output:    output,
	})
	if err != nil {
		return nil, err
	}
	log.Info("function URL emulator started", "function", bootstrap, "rie", rie, "rie_pid", r.Pid(),
		"invocations", "one at a time")
	h := funcurl.New(funcurl.Config{Spooler: spooler, Invoker: r, Logger: log, ReadTimeout: cfg.ReadTimeout})
	return &functionURL{Handler: h, rie: r}, nil
}

// functionEnv is environ with the function's settings taken from cfg, so
// that flags reach the function as they reach this server, and the
// function spools into the same directory.
func functionEnv(environ []string, cfg config, spoolDir string) []string {
	set := map[string]string{
		"SPILLWAY_BUCKET":          cfg.Bucket,
		"SPILLWAY_PREFIX":          cfg.Prefix,
		"SPILLWAY_SPOOL_DIR":       spoolDir,
		"SPILLWAY_THRESHOLD":       strconv.FormatInt(cfg.Threshold, 10),
		"SPILLWAY_MAX_UPLOAD_SIZE": strconv.FormatInt(cfg.MaxUploadSize, 10),
		"SPILLWAY_MEMORY_BUDGET":   strconv.FormatInt(cfg.MemoryBudget, 10),
		"SPILLWAY_TOKEN":           cfg.Token,
	}
	// The emulator's own default timeout is 300 s; the template gives the
	// deployed function 900, which completing a multi-GiB upload needs.
	if !slices.ContainsFunc(environ, func(kv string) bool { return strings.HasPrefix(kv, "AWS_LAMBDA_FUNCTION_TIMEOUT=") }) {
		set["AWS_LAMBDA_FUNCTION_TIMEOUT"] = "900"
	}
	env := make([]string, 0, len(environ)+len(set))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if _, ours := set[name]; !ours {
			env = append(env, kv)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(set)) {
		if v := set[name]; v != "" {
			env = append(env, name+"="+v)
		}
	}
	return env
}
