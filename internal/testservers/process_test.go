package testservers

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sh(script string) *exec.Cmd { return exec.Command("/bin/sh", "-c", script) }

func TestStartProcessReadsTheURLAndPassesLinesOn(t *testing.T) {
	log := &Log{}
	p, err := StartProcess(t.Context(), sh(`echo starting >&2; echo "msg=up url=http://127.0.0.1:1234 n=7"; exec sleep 60`),
		Options{Ready: regexp.MustCompile(`url=(http://\S+) n=(\d+)`), Output: log})
	require.NoError(t, err)
	defer p.Kill()
	assert.Equal(t, "http://127.0.0.1:1234", p.URL)
	assert.Equal(t, "7", p.Ready[2])
	assert.Equal(t, "starting\nmsg=up url=http://127.0.0.1:1234 n=7\n", log.String(), "stdout and stderr, line by line")

	require.ErrorContains(t, p.Stop(10*time.Second), "exit after SIGTERM", "sleep dies of the signal")
	select {
	case <-p.Exited():
	default:
		t.Fatal("Stop returned before the process exited")
	}
}

func TestStartProcessExplainsAProgramThatExits(t *testing.T) {
	_, err := StartProcess(t.Context(), sh(`echo "bad flag --x" >&2; exit 2`), Options{})
	require.ErrorContains(t, err, "exited before listening")
	require.ErrorContains(t, err, "bad flag --x")
}

func TestStartProcessGivesUpAndKills(t *testing.T) {
	cmd := sh(`echo no url here; exec sleep 60`)
	_, err := StartProcess(t.Context(), cmd, Options{Timeout: 200 * time.Millisecond})
	require.ErrorContains(t, err, "no ready line within 200ms")
	require.ErrorContains(t, err, "no url here")
	require.NotNil(t, cmd.ProcessState, "the program was waited for")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = StartProcess(ctx, sh(`exec sleep 60`), Options{})
	require.ErrorIs(t, err, context.Canceled)
}

// A child that inherits the output and outlives the program must not keep
// Exited from closing.
func TestExitedDoesNotWaitForChildrenHoldingTheOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the drain delay")
	}
	p, err := StartProcess(t.Context(), sh(`sleep 30 & echo url=http://127.0.0.1:1; exit 0`), Options{})
	require.NoError(t, err)
	select {
	case <-p.Exited():
	case <-time.After(drainDelay + 10*time.Second):
		t.Fatal("Exited waits for the child that holds the output")
	}
	require.NoError(t, p.Err())
}

func TestLogWaitFor(t *testing.T) {
	log := &Log{}
	go func() {
		log.Write([]byte("one\n"))
		log.Write([]byte("two n=42\n"))
	}()
	m := log.WaitFor(t, regexp.MustCompile(`n=(\d+)`), 10*time.Second, nil)
	assert.Equal(t, "42", m[1])
}

func TestProcStatus(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	rss, err := ProcStatusBytes(os.Getpid(), "VmRSS")
	require.NoError(t, err)
	hwm := PeakRSS(t, os.Getpid())
	assert.Positive(t, rss)
	assert.LessOrEqual(t, rss, hwm, "the peak, read later, is at least the RSS read before")
	_, err = ProcStatusBytes(os.Getpid(), "NoSuchField")
	require.ErrorContains(t, err, "no NoSuchField")
	assert.Positive(t, CountFDs(os.Getpid()))
}

func TestCleanEnv(t *testing.T) {
	t.Setenv("SPILLWAY_TOKEN", "secret")
	t.Setenv("GOMEMLIMIT", "1GiB")
	t.Setenv("KEEP_ME", "1")
	env := CleanEnv()
	assert.Contains(t, env, "KEEP_ME=1")
	assert.NotContains(t, env, "SPILLWAY_TOKEN=secret")
	assert.NotContains(t, env, "GOMEMLIMIT=1GiB")
}

// slowOutput holds each write until StartProcess has returned, or a second
// has passed: when StartProcess returns before the ready line was written,
// the caller reads a log without it.
type slowOutput struct {
	Log
	returned chan struct{}
}

func (o *slowOutput) Write(p []byte) (int, error) {
	select {
	case <-o.returned:
	case <-time.After(time.Second):
	}
	return o.Log.Write(p)
}

func TestStartProcessReturnsOnceTheReadyLineIsInTheOutput(t *testing.T) {
	out := &slowOutput{returned: make(chan struct{})}
	p, err := StartProcess(t.Context(), sh(`echo "msg=up url=http://127.0.0.1:1234"; exec sleep 60`), Options{Output: out})
	close(out.returned)
	require.NoError(t, err)
	defer p.Kill()
	assert.Contains(t, out.String(), "url=http://127.0.0.1:1234", "the start-up line is in the output when StartProcess returns")
}
