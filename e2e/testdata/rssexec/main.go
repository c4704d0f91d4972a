// Command rssexec runs a command and records its peak resident set size:
//
//	rssexec OUTFILE COMMAND [ARG...]
//
// It exists because a test cannot measure a child's peak RSS itself: Linux
// carries the old memory's high-water mark over an exec (fs/exec.c,
// setmax_mm_hiwater_rss), and Go starts children with CLONE_VM, so a
// child's ru_maxrss is at least its parent's peak: that of the test
// binary, race detector and all. This small process is the CLI's parent
// instead, so what the CLI inherits is this process's few MiB.
//
// It forwards SIGINT and SIGTERM to the command, writes the command's
// ru_maxrss (KiB) to OUTFILE once it exits, and exits with its status
// (128+N for a command killed by signal N).
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: rssexec OUTFILE COMMAND [ARG...]")
		os.Exit(2)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)

	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// The command dies with this process: a test that kills it leaves
	// nothing running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "rssexec:", err)
		os.Exit(127)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	_ = cmd.Wait() // the status is read from ProcessState
	close(done)

	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		fmt.Fprintln(os.Stderr, "rssexec: no rusage")
		os.Exit(125)
	}
	if err := os.WriteFile(os.Args[1], []byte(strconv.FormatInt(ru.Maxrss, 10)), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "rssexec:", err)
		os.Exit(125)
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		os.Exit(128 + int(ws.Signal()))
	}
	os.Exit(ws.ExitStatus())
}
