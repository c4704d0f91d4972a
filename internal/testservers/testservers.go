// Package testservers builds and starts the real servers that tests run
// against: versitygw, an S3 gateway that verifies SigV4, checksums and
// If-None-Match, and the AWS Lambda Runtime Interface Emulator. Both are
// pinned here and built from the Go module proxy on first use, so `go test`
// needs nothing installed by hand. They listen on 127.0.0.1 only.
package testservers

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"
)

// Pinned tools.
const (
	VersityGW = "github.com/versity/versitygw/cmd/versitygw@v1.8.0"
	RIE       = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d"
)

var installMu sync.Mutex

// Tool returns the path of the binary that `go install spec` builds,
// installing it once into the user cache directory.
func Tool(t testing.TB, spec string) string {
	t.Helper()
	bin, err := Install(spec)
	require.NoError(t, err)
	return bin
}

// Install is Tool for programs that are not tests, such as the benchmarks.
func Install(spec string) (string, error) {
	installMu.Lock()
	defer installMu.Unlock()
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	pkg, version, ok := strings.Cut(spec, "@")
	if !ok {
		return "", fmt.Errorf("tool spec needs a version: %s", spec)
	}
	dir := filepath.Join(cache, "spillway-tools", version)
	bin := filepath.Join(dir, filepath.Base(pkg))
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Install into a private directory and rename, so that test binaries
	// of several packages installing at once never see a partial file.
	tmp, err := os.MkdirTemp(dir, "install-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "install", spec)
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s: %w\n%s", spec, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, filepath.Base(pkg)), bin); err != nil {
		return "", err
	}
	return bin, nil
}

// FreePort returns a loopback address with a port that was free a moment
// ago, for servers that cannot report the port they chose.
func FreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// WaitListening waits until addr accepts TCP connections, or fails t.
func WaitListening(t testing.TB, addr string, exited <-chan struct{}) {
	t.Helper()
	require.NoError(t, waitListening(addr, exited))
}

func waitListening(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("server exited before listening on %s", addr)
		default:
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("nothing listens on %s: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond) // polling another process's socket
	}
}

// S3 is a running versitygw with one bucket.
type S3 struct {
	Endpoint  string // http://127.0.0.1:PORT
	Region    string
	AccessKey string
	SecretKey string
	Bucket    string
	Dir       string // the gateway's root: objects are Dir/Bucket/key

	cmd    *exec.Cmd
	exited chan struct{}
}

// StartS3 starts versitygw on a free loopback port with an empty bucket.
// It is stopped when the test ends.
func StartS3(t testing.TB) *S3 {
	t.Helper()
	bin := Tool(t, VersityGW)
	s, err := LaunchS3(bin, t.TempDir(), os.Stderr)
	require.NoError(t, err)
	t.Cleanup(s.Stop)
	return s
}

// LaunchS3 is StartS3 for programs that are not tests, such as the
// benchmarks: it starts the versitygw binary bin on a free loopback port,
// serving dir with an empty bucket, its output going to out. The caller
// stops it.
func LaunchS3(bin, dir string, out io.Writer) (*S3, error) {
	s := &S3{
		Region:    "us-east-1",
		AccessKey: "SPILLWAYTESTKEY",
		SecretKey: "spillway-test-secret",
		Bucket:    "spillway-test",
		Dir:       dir,
		exited:    make(chan struct{}),
	}
	if err := os.Mkdir(filepath.Join(s.Dir, s.Bucket), 0o755); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	s.Endpoint = "http://" + addr
	s.cmd = exec.Command(bin, "-q", "-p", addr, "-a", s.AccessKey, "-s", s.SecretKey, "posix", s.Dir)
	s.cmd.Stdout, s.cmd.Stderr = out, out
	s.cmd.SysProcAttr = DieWithParent()
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting versitygw: %w", err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	if err := waitListening(addr, s.exited); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Pid is the gateway's process ID.
func (s *S3) Pid() int { return s.cmd.Process.Pid }

// Stop stops the gateway (a test of S3 being down calls it early).
func (s *S3) Stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Kill()
	<-s.exited
}

// Client returns an SDK client for the gateway, configured like the
// function's: explicit endpoint, path-style addressing.
func (s *S3) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
	})
}

// Env returns the environment that points the AWS SDK at the gateway.
func (s *S3) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL_S3=" + s.Endpoint,
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + s.Region,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// RequireNoMultipartUploads fails t if any multipart upload is still open.
func (s *S3) RequireNoMultipartUploads(t testing.TB) {
	t.Helper()
	out, err := s.Client().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(s.Bucket)})
	require.NoError(t, err)
	require.Empty(t, out.Uploads, "incomplete multipart uploads left behind")
}

// ObjectPath is where the gateway keeps key on disk.
func (s *S3) ObjectPath(key string) string {
	return filepath.Join(s.Dir, s.Bucket, filepath.FromSlash(key))
}

// Stopped is closed once the gateway has exited.
func (s *S3) Stopped() <-chan struct{} { return s.exited }
