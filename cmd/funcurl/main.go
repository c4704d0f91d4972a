// Command funcurl is the local Function URL emulator: it serves a Lambda
// function binary (bootstrap) behind a local Function URL, each request
// running the function under the Runtime Interface Emulator, with no
// Docker. `localserver --function` runs the same.
package main

import (
	"context"
	"errors"
	"io"

	"spillway/internal/config"
	"spillway/internal/emulator"
	"spillway/internal/serve"
)

func main() { serve.Main("funcurl", run) }

// run serves until ctx is cancelled. ready, when not nil, receives the
// address the emulator listens on.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready chan<- string) error {
	cfg, err := config.Parse(config.Emulator, args, getenv, stderr)
	if err != nil {
		return err
	}
	if cfg.Function == "" {
		return errors.New("--function: give the function binary to serve, such as bin/bootstrap (`make build` builds it)")
	}
	serve.LimitMemory(getenv, cfg.MemoryBudget)
	return emulator.Run(ctx, cfg, stderr, ready)
}
