package config

import (
	"fmt"
	"log/slog"
	"os"

	"spillway/spool"
)

// Spooler makes the spool dir, sweeps it of the spool files that no live
// process owns (a crashed run's, or a previous cold start's in a /tmp
// that outlives invocations), and returns the spooler for c's threshold
// and memory budget, spooling no body over maxSize (0: no limit), with the
// count of files swept. The spooler starts writing disk bodies back early
// only when they will be fsynced: into a directory with fsync on. A sweep that fails is logged, not fatal: the
// spool works without it.
func (c Config) Spooler(maxSize int64, log *slog.Logger) (*spool.Spooler, int, error) {
	if err := os.MkdirAll(c.SpoolDir, 0o700); err != nil {
		return nil, 0, fmt.Errorf("spool dir: %w", err)
	}
	swept, err := spool.Sweep(c.SpoolDir)
	if err != nil {
		log.Warn("sweeping the spool dir failed", "error", err)
	}
	sp, err := spool.New(spool.Config{
		Dir:          c.SpoolDir,
		Threshold:    c.Threshold,
		MemoryBudget: c.MemoryBudget,
		MaxSize:      maxSize,
		// Only a directory store fsyncs the spooled file where it lands.
		WriteBehind: c.Fsync && c.Bucket == "",
	})
	if err != nil {
		return nil, 0, err
	}
	return sp, swept, nil
}
