package testservers

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// URLLine matches any line that announces a URL with a url= field, as the
// local server and the benchmark's reference servers do once they listen.
var URLLine = regexp.MustCompile(`url=(http://\S+)`)

// Options says how StartProcess recognises a started program.
type Options struct {
	// Ready matches the line the program writes once it listens; its
	// first group is the URL. Nil means URLLine.
	Ready *regexp.Regexp
	// Output receives everything the program writes to stdout and
	// stderr, one Write per line. Nil discards it.
	Output io.Writer
	// Timeout bounds the wait for the ready line; zero means 30 s.
	Timeout time.Duration
}

// Process is a started program that has announced its URL.
type Process struct {
	Cmd   *exec.Cmd
	URL   string
	Ready []string // the ready line's submatches

	exited chan struct{}
	err    error // from Wait, once exited is closed

	mu    sync.Mutex
	first []string // the first lines, for a program that does not start
}

// keptLines is how many of its first lines a Process keeps to explain a
// start that failed.
const keptLines = 50

// drainDelay is how long the output may stay open after the program has
// exited: children it started may hold it, and must not keep Exited from
// closing.
const drainDelay = 5 * time.Second

// StartProcess starts cmd with its stdout and stderr going through o, and
// waits for the ready line. Unless cmd sets SysProcAttr, the program gets
// SIGKILL when this process dies, so none outlives a test or a tool that
// was killed. It stops the program again when the ready line does not
// come within the timeout or ctx ends first.
func StartProcess(ctx context.Context, cmd *exec.Cmd, o Options) (*Process, error) {
	if o.Ready == nil {
		o.Ready = URLLine
	}
	if o.Output == nil {
		o.Output = io.Discard
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = DieWithParent()
	}
	// A pipe of our own rather than exec's copying goroutines: Wait then
	// returns when the program exits, not when the last child that
	// inherited the output closes it.
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	p := &Process{Cmd: cmd, exited: make(chan struct{})}
	ready := make(chan []string, 1)
	drained := make(chan struct{})
	go p.read(pr, o, ready, drained)
	go func() {
		p.err = cmd.Wait()
		timer := time.NewTimer(drainDelay)
		select {
		case <-drained:
		case <-timer.C:
			pr.Close() // ends the read
			<-drained
		}
		timer.Stop()
		pr.Close()
		close(p.exited)
	}()

	timeout := time.NewTimer(o.Timeout)
	defer timeout.Stop()
	var why error
	select {
	case m := <-ready:
		p.Ready, p.URL = m, m[1]
		return p, nil
	case <-p.exited:
		select {
		case m := <-ready: // it said so before it exited
			p.Ready, p.URL = m, m[1]
			return p, nil
		default:
		}
		return nil, fmt.Errorf("%s exited before listening (%v):\n%s", cmd.Path, p.err, strings.Join(p.firstLines(), "\n"))
	case <-timeout.C:
		why = fmt.Errorf("no ready line within %s", o.Timeout)
	case <-ctx.Done():
		why = ctx.Err()
	}
	p.Kill()
	return nil, fmt.Errorf("%s: %w:\n%s", cmd.Path, why, strings.Join(p.firstLines(), "\n"))
}

// read passes the program's output on line by line, until the pipe ends,
// and reports the first ready line.
func (p *Process) read(r io.Reader, o Options, ready chan<- []string, drained chan<- struct{}) {
	defer close(drained)
	br := bufio.NewReaderSize(r, 64<<10)
	found := false
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			var m []string
			if !found {
				m = o.Ready.FindStringSubmatch(line)
				p.mu.Lock()
				if len(p.first) < keptLines {
					p.first = append(p.first, strings.TrimSuffix(line, "\n"))
				}
				p.mu.Unlock()
			}
			// Output has every line up to the ready one before the
			// caller hears of it, so it can read the start-up line.
			o.Output.Write([]byte(line))
			if m != nil {
				found = true
				ready <- m
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Process) firstLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.first)
}

// Pid is the program's process ID.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Exited is closed once the program has exited and its output has been
// passed on.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is the program's exit status, once Exited is closed.
func (p *Process) Err() error { return p.err }

// Stop sends SIGTERM and waits up to timeout for the program to exit,
// then kills it. It returns why the exit was not clean.
func (p *Process) Stop(timeout time.Duration) error {
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGTERM: %w", err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.exited:
		if p.err != nil {
			return fmt.Errorf("exit after SIGTERM: %w", p.err)
		}
		return nil
	case <-timer.C:
		p.Kill()
		return fmt.Errorf("did not exit within %s of SIGTERM", timeout)
	}
}

// Kill ends the program if it still runs, and waits until it has exited.
func (p *Process) Kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.Cmd.Process.Kill() // an error only says it has exited already
	<-p.exited
}

// CleanEnv is this process's environment without the settings that would
// change a program under test behind its flags' back: SPILLWAY_*, and the
// Go runtime's memory settings.
func CleanEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "SPILLWAY_") || strings.HasPrefix(kv, "GOMEMLIMIT=") || strings.HasPrefix(kv, "GOGC=")
	})
}
