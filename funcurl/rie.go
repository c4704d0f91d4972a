package funcurl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// RIEConfig configures StartRIE.
type RIEConfig struct {
	// Path is the aws-lambda-rie binary.
	Path string
	// Bootstrap is the function's binary.
	Bootstrap string
	// Env is the emulator's environment, which it passes on to the
	// function whole. Nil means this process's.
	Env []string
	// Output receives the emulator's and the function's output. Nil
	// discards it.
	Output io.Writer
	// StartTimeout bounds the wait for the emulator to listen. Zero means
	// 30 s.
	StartTimeout time.Duration
	// InvokeTimeout bounds one invocation, in case the emulator hangs. Zero
	// means 16 minutes: Lambda's longest timeout is 15, and the emulator
	// ends a function at its own (AWS_LAMBDA_FUNCTION_TIMEOUT, default
	// 300 s).
	InvokeTimeout time.Duration

	// choosePorts, when set, stands in for freePorts, for tests that give
	// the emulator a port already taken.
	choosePorts func(n int) ([]string, error)
}

// RIE is the Runtime Interface Emulator running one function, as a child
// process. It is an Invoker. It serves one invocation at a time: the
// Handler queues them (Config.Concurrency).
type RIE struct {
	url           string
	client        *http.Client
	cmd           *exec.Cmd
	exited        chan struct{} // closed after cmd.ProcessState is set
	invokeTimeout time.Duration

	life      context.Context // cancelled by Close, to end invocations
	stop      context.CancelFunc
	closeOnce sync.Once
}

// StartRIE starts the emulator on two free loopback ports (its invoke API
// and the runtime API it serves the function), and returns once it listens
// on both and accepts connections. The emulator starts the function at the
// first invocation.
func StartRIE(ctx context.Context, cfg RIEConfig) (*RIE, error) {
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	if cfg.InvokeTimeout <= 0 {
		cfg.InvokeTimeout = 16 * time.Minute
	}
	var errs []error
	// A free port can be taken between choosing and binding it; the
	// emulator then exits, and another pair is tried.
	for range 3 {
		r, err := startRIE(ctx, cfg)
		if err == nil {
			return r, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, errExitedEarly) {
			break
		}
	}
	return nil, errors.Join(errs...)
}

var errExitedEarly = errors.New("funcurl: the emulator exited before it listened")

func startRIE(ctx context.Context, cfg RIEConfig) (*RIE, error) {
	// The runtime API must be on a port of its own: its default, 9001,
	// would clash between two emulators.
	choose := cfg.choosePorts
	if choose == nil {
		choose = freePorts
	}
	ports, err := choose(2)
	if err != nil {
		return nil, err
	}
	addr, runtimeAPI := ports[0], ports[1]
	cmd := exec.Command(cfg.Path,
		"--runtime-interface-emulator-address", addr,
		"--runtime-api-address", runtimeAPI,
		cfg.Bootstrap)
	cmd.Env = cfg.Env
	cmd.Stdout, cmd.Stderr = cfg.Output, cfg.Output
	cmd.SysProcAttr = dieWithParent()
	// The function inherits the output pipe; if it outlives the emulator
	// for a moment, Wait must not wait for it.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("funcurl: start the emulator: %w", err)
	}
	life, stop := context.WithCancel(context.Background())
	r := &RIE{
		url: "http://" + addr + "/2015-03-31/functions/function/invocations",
		client: &http.Client{Transport: &http.Transport{
			Proxy:              nil, // loopback, whatever HTTP_PROXY says
			DisableCompression: true,
			MaxIdleConns:       1,
		}},
		cmd:           cmd,
		exited:        make(chan struct{}),
		invokeTimeout: cfg.InvokeTimeout,
		life:          life,
		stop:          stop,
	}
	go func() {
		cmd.Wait() // the exit status is in ProcessState
		close(r.exited)
	}()
	if err := r.waitListening(ctx, addr, runtimeAPI, cfg.StartTimeout); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// freePorts is n loopback addresses with distinct ports, free a moment
// ago: each port is held until all are chosen, or the kernel could hand
// out one just let go again.
func freePorts(n int) ([]string, error) {
	addrs := make([]string, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("funcurl: find a free port: %w", err)
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// waitListening polls until the emulator's invoke API at addr accepts a
// connection and both its ports are its own sockets: another process's
// socket gives no other signal. Its invoke API answering says nothing of
// its runtime API, which it binds beside it and whose failure (the port
// taken meanwhile, by a process whose socket would answer a dial too)
// makes it exit; a function started then would fail its first invocation.
func (r *RIE) waitListening(ctx context.Context, addr, runtimeAPI string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		err := r.listening(addr, runtimeAPI)
		if err == nil {
			return nil
		}
		select {
		case <-r.exited:
			return fmt.Errorf("%w (%s)", errExitedEarly, r.cmd.ProcessState)
		case <-deadline.C:
			return fmt.Errorf("funcurl: the emulator does not listen on %s and %s after %s: %w", addr, runtimeAPI, timeout, err)
		case <-ctx.Done():
			return fmt.Errorf("funcurl: waiting for the emulator: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// listening returns nil once the emulator accepts a connection at addr and
// listens on both addr and runtimeAPI.
func (r *RIE) listening(addr, runtimeAPI string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	conn.Close()
	for _, a := range []string{addr, runtimeAPI} {
		if err := listensOn(r.cmd.Process.Pid, a); err != nil {
			return err
		}
	}
	return nil
}

// Invoke implements Invoker. The emulator reports a crashed or timed-out
// function with a status other than 200, or a text body; a function that
// returned an error arrives as an error object in a 200.
func (r *RIE) Invoke(ctx context.Context, inv Invocation) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, r.invokeTimeout)
	defer cancel()
	defer context.AfterFunc(r.life, cancel)()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, inv.Event)
	if err != nil {
		return nil, fmt.Errorf("funcurl: build the invocation: %w", err)
	}
	req.ContentLength = inv.Size
	req.Header.Set("Content-Type", "application/json")
	// The emulator takes the request ID from this header, so the function
	// logs the ID the client sees in x-amzn-requestid.
	req.Header.Set("X-Amzn-RequestId", inv.RequestID)
	req.Header.Set("X-Amzn-Trace-Id", inv.TraceID)
	resp, err := r.client.Do(req)
	if err != nil {
		select {
		case <-r.exited:
			return nil, fmt.Errorf("funcurl: the emulator has exited (%s): %w", r.cmd.ProcessState, err)
		default:
		}
		return nil, fmt.Errorf("funcurl: invoke: %w", err)
	}
	defer resp.Body.Close()
	payload, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return nil, fmt.Errorf("funcurl: read the function's response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("funcurl: the emulator answered %s: %.500s", resp.Status, payload)
	}
	return payload, nil
}

// Pid is the emulator's process ID.
func (r *RIE) Pid() int { return r.cmd.Process.Pid }

// Exited is closed once the emulator has exited.
func (r *RIE) Exited() <-chan struct{} { return r.exited }

// Close ends invocations in flight and stops the emulator, which stops
// the function: SIGTERM, then SIGKILL after 5 s. It waits for the exit.
func (r *RIE) Close() error {
	r.closeOnce.Do(func() {
		r.stop()
		r.client.CloseIdleConnections()
		r.cmd.Process.Signal(syscall.SIGTERM) // an error says it has exited
		select {
		case <-r.exited:
		case <-time.After(5 * time.Second):
			r.cmd.Process.Kill()
			<-r.exited
		}
	})
	return nil
}
