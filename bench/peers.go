package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
)

// TusdVersion is the tusd compared with Spillway's tus endpoint.
const TusdVersion = "github.com/tus/tusd/v2/cmd/tusd@v2.9.1"

// tusChunk is the size of each PATCH the tus client sends, to tusd and to
// Spillway alike.
const tusChunk = 64 << 20

// peerTools are the real tools the peers run, found or installed once per
// run. A peer whose tool is missing is skipped, with its reason.
type peerTools struct {
	nginx, tusd, versitygw, rie, bootstrap, cli, aws string
	versions                                         map[string]string // peer -> version line, for the report
	skipped                                          map[string]string // peer -> why it did not run
	source                                           string            // the file aws s3 cp and spillway push send
}

func (t *peerTools) skip(o options, peer, why string) {
	t.skipped[peer] = why
	logf(o, "skipping %s: %s", peer, why)
}

// setupPeers finds or installs every peer's tool, as the tests' set-up
// does: apt for nginx, go install for Go programs, builds of this tree for
// Spillway's own. It never fails the run; a peer it cannot set up is skipped.
func setupPeers(ctx context.Context, o options, work string, pattern []byte) *peerTools {
	t := &peerTools{versions: map[string]string{}, skipped: map[string]string{}}
	if o.runsKind(kindRaw) || o.runsKind(kindSmall) {
		if nginx, err := findNginx(ctx, o); err != nil {
			t.skip(o, peerNginx, err.Error())
			t.skip(o, peerNginxTuned, err.Error())
		} else {
			t.nginx = nginx
			out, _ := exec.CommandContext(ctx, nginx, "-v").CombinedOutput()
			t.versions[peerNginx] = strings.TrimSpace(string(out)) + " (Debian package)"
		}
	}
	if o.runsKind(kindTus) {
		if bin, err := testservers.Install(TusdVersion); err != nil {
			t.skip(o, peerTusd, err.Error())
		} else {
			t.tusd = bin
			t.versions[peerTusd] = "tusd " + strings.SplitN(TusdVersion, "@", 2)[1] + " (go install), filestore"
		}
	}
	// Peers of cases --cases leaves out are neither installed nor built.
	if !o.runsKind(kindS3) {
		return t
	}
	var err error
	if t.versitygw, err = testservers.Install(testservers.VersityGW); err != nil {
		for _, p := range []string{peerAWSCLI, peerPush, peerPushEmu} {
			t.skip(o, p, "no S3 gateway: "+err.Error())
		}
		return t
	}
	t.versions["versitygw"] = "versitygw " + strings.SplitN(testservers.VersityGW, "@", 2)[1] + " (the S3 gateway of the S3 rows)"
	if aws, err := exec.LookPath("aws"); err != nil {
		t.skip(o, peerAWSCLI, "no aws on PATH (aws-cli is not installable from the registries this machine reaches)")
	} else if out, err := exec.CommandContext(ctx, aws, "--version").CombinedOutput(); err != nil {
		t.skip(o, peerAWSCLI, fmt.Sprintf("aws --version: %v: %s", err, bytes.TrimSpace(out)))
	} else {
		t.aws = aws
		t.versions[peerAWSCLI] = strings.TrimSpace(string(out))
	}
	t.cli = filepath.Join(work, "spillway")
	if err := testservers.GoBuild(ctx, t.cli, testservers.CLI); err != nil {
		t.skip(o, peerPush, err.Error())
		t.skip(o, peerPushEmu, err.Error())
		return t
	}
	t.bootstrap = filepath.Join(work, "bootstrap")
	if err := testservers.GoBuild(ctx, t.bootstrap, testservers.Function); err != nil {
		t.skip(o, peerPushEmu, err.Error())
	} else if t.rie, err = testservers.Install(testservers.RIE); err != nil {
		t.skip(o, peerPushEmu, err.Error())
	}
	t.source = filepath.Join(work, "source.bin")
	if err := writePattern(t.source, pattern, o.large[0]); err != nil {
		for _, p := range []string{peerAWSCLI, peerPush, peerPushEmu} {
			t.skip(o, p, "writing the source file: "+err.Error())
		}
	}
	return t
}

// findNginx returns the nginx binary, installing Debian's package when it
// is missing and this process may (root, with apt-get).
func findNginx(ctx context.Context, o options) (string, error) {
	find := func() (string, error) {
		if p, err := exec.LookPath("nginx"); err == nil {
			return p, nil
		}
		if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
			return "/usr/sbin/nginx", nil
		}
		return "", errors.New("no nginx")
	}
	if p, err := find(); err == nil {
		return p, nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil || os.Geteuid() != 0 || o.noApt {
		return "", errors.New("no nginx on PATH; install it with: sudo apt-get install -y nginx")
	}
	logf(o, "installing nginx: apt-get install -y --no-install-recommends nginx")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "--no-install-recommends", "nginx")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get install nginx: %v: %s", err, lastLines(string(out), 1))
	}
	return find()
}

func writePattern(path string, pattern []byte, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, &uploadtest.PatternReader{P: pattern, N: size})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// nginxConf serves WebDAV PUT on /files/ into the uploads directory, with
// request bodies buffered in a temp directory on the same filesystem, as
// Debian's package does by default. Only the body buffer differs between
// the default and the tuned peer.
var nginxConf = template.Must(template.New("nginx").Parse(`daemon off;
master_process on;
worker_processes auto;
{{if .Root}}user root;
{{end}}pid {{.Dir}}/nginx.pid;
error_log stderr notice;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path {{.Dir}}/body;
	proxy_temp_path {{.Dir}}/proxy;
	fastcgi_temp_path {{.Dir}}/fastcgi;
	uwsgi_temp_path {{.Dir}}/uwsgi;
	scgi_temp_path {{.Dir}}/scgi;
	client_max_body_size 0;
{{if .Tuned}}	client_body_buffer_size 256k;
{{end}}	server {
		listen {{.Addr}};
		location /files/ {
			alias {{.Uploads}}/;
			dav_methods PUT;
		}
	}
}
`))

// nginxReady is the master's notice once its workers run; it listens by
// then. The empty group stands for the URL, which nginx does not print.
var nginxReady = regexp.MustCompile(`start worker processes()`)

func startNginx(ctx context.Context, bin string, tuned bool, p *server, dir string) error {
	conf := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(filepath.Join(conf, "body"), 0o755); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := nginxConf.Execute(&b, map[string]any{"Dir": conf, "Uploads": p.dir, "Addr": addr, "Tuned": tuned, "Root": os.Geteuid() == 0}); err != nil {
		return err
	}
	file := filepath.Join(conf, "nginx.conf")
	if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(bin, "-p", conf, "-c", file, "-e", "stderr")
	proc, err := testservers.StartProcess(ctx, cmd, testservers.Options{Ready: nginxReady})
	if err != nil {
		return err
	}
	proc.URL = "http://" + addr
	p.Process = proc
	// The workers are up when the master says so, but the listening socket
	// is what the client needs.
	return waitDial(ctx, addr)
}

func waitDial(ctx context.Context, addr string) error {
	for range 500 {
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.Close()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(20 * time.Millisecond) // polling another process's socket
	}
	return fmt.Errorf("nothing listens on %s", addr)
}

// tusdReady is tusd's line once it listens.
var tusdReady = regexp.MustCompile(`upload files to: (http://\S+?)/files/`)

func startTusd(ctx context.Context, bin string, p *server) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "-host", host, "-port", port, "-upload-dir", p.dir, "-base-path", "/files/", "-disable-download")
	proc, err := testservers.StartProcess(ctx, cmd, testservers.Options{Ready: tusdReady})
	if err != nil {
		return err
	}
	p.Process = proc
	p.tusPath = "/files/"
	return nil
}

// tusEndpoint is where Spillway's tus endpoint is expected.
const tusEndpoint = "/tus/"

// hasTus reports whether the server at url answers a tus OPTIONS request on
// path with the protocol's Tus-Version header.
func hasTus(ctx context.Context, url, path string) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodOptions, url+path, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.Header.Get("Tus-Version") != ""
}

// runTus uploads c.size bytes with the tus protocol (core and creation):
// one POST that creates the upload, then PATCHes of tusChunk bytes, each
// checked against the offset the server answers. The same client serves
// tusd and Spillway.
func runTus(ctx context.Context, p *server, c caseSpec, pattern []byte, res *runResult) {
	client := newClient(1)
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, time.Minute+time.Duration(c.size/20e6)*time.Second)
	defer cancel()
	start := time.Now()
	err := tusUpload(ctx, client, p.URL+p.tusPath, "large.bin", &uploadtest.PatternReader{P: pattern, N: c.size}, c.size)
	res.elapsed = time.Since(start)
	if err != nil {
		res.err, res.failed = err.Error(), 1
		return
	}
	res.ok, res.bytes = 1, c.size
}

func tusUpload(ctx context.Context, client *http.Client, endpoint, name string, body io.Reader, size int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
	req.Header.Set("Upload-Metadata", "filename "+base64.StdEncoding.EncodeToString([]byte(name)))
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("tus create: %w", err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("tus create: status %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	loc, err := resp.Location()
	if err != nil {
		return fmt.Errorf("tus create: %w", err)
	}
	var off int64
	for i := 0; off < size && i <= int(size/tusChunk)+1; i++ {
		n := min(tusChunk, size-off)
		req, err := http.NewRequestWithContext(ctx, http.MethodPatch, loc.String(), io.LimitReader(body, n))
		if err != nil {
			return err
		}
		req.ContentLength = n
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Upload-Offset", strconv.FormatInt(off, 10))
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("tus patch at %d: %w", off, err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("tus patch at %d: status %d: %s", off, resp.StatusCode, bytes.TrimSpace(msg))
		}
		got, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
		if err != nil || got != off+n {
			return fmt.Errorf("tus patch at %d: server is at offset %q, want %d", off, resp.Header.Get("Upload-Offset"), off+n)
		}
		off = got
	}
	if off != size {
		return fmt.Errorf("tus: stopped at offset %d of %d", off, size)
	}
	return nil
}

// startS3Peer starts a fresh gateway under dir and, for Spillway's rows,
// localserver storing into it (directly, or as the function behind the
// local Function URL emulator).
func startS3Peer(ctx context.Context, o options, s serverSpec, t *peerTools, p *server, dir string) error {
	gwDir := filepath.Join(dir, "s3")
	if err := os.MkdirAll(gwDir, 0o755); err != nil {
		return err
	}
	gw, err := testservers.LaunchS3(t.versitygw, gwDir, io.Discard)
	if err != nil {
		return err
	}
	p.gw = gw
	if s.peer == peerAWSCLI {
		return nil
	}
	args := []string{"--addr", "127.0.0.1:0", "--bucket", gw.Bucket, "--spool-dir", p.spoolDir}
	if s.peer == peerPushEmu {
		args = append(args, "--function", t.bootstrap, "--rie", t.rie)
	}
	cmd := exec.Command(o.server, args...)
	cmd.Env = append(testservers.CleanEnv(), gw.Env()...)
	proc, err := testservers.StartProcess(ctx, cmd, testservers.Options{Timeout: time.Minute})
	if err != nil {
		return err
	}
	p.Process = proc
	return nil
}

// runS3 sends the source file to the gateway: with aws s3 cp straight to
// it, or with spillway push through localserver, and checks the object.
func runS3(ctx context.Context, p *server, s serverSpec, t *peerTools, c caseSpec, res *runResult) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute+time.Duration(c.size/10e6)*time.Second)
	defer cancel()
	const key = "large.bin"
	var cmd *exec.Cmd
	if s.peer == peerAWSCLI {
		cmd = exec.CommandContext(ctx, t.aws, "s3", "cp", "--no-progress", "--endpoint-url", p.gw.Endpoint,
			t.source, "s3://"+p.gw.Bucket+"/"+key)
		// No user configuration: aws-cli's own multipart defaults.
		cmd.Env = append(testservers.CleanEnv(), p.gw.Env()...)
		cmd.Env = append(cmd.Env, "AWS_CONFIG_FILE="+os.DevNull, "AWS_SHARED_CREDENTIALS_FILE="+os.DevNull)
	} else {
		cmd = exec.CommandContext(ctx, t.cli, "push", "--quiet", "--no-resume", "--url", p.URL, "--name", key, t.source)
		cmd.Env = testservers.CleanEnv()
	}
	cmd.SysProcAttr = testservers.DieWithParent()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	res.elapsed = time.Since(start)
	if cmd.ProcessState != nil {
		res.clientCPU += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		res.err, res.failed = fmt.Sprintf("%s: %v: %s", filepath.Base(cmd.Path), err, lastLines(string(out), 1)), 1
		return
	}
	fi, err := os.Stat(p.gw.ObjectPath(key))
	if err == nil && fi.Size() != c.size {
		err = fmt.Errorf("stored %d bytes, sent %d", fi.Size(), c.size)
	}
	if err != nil {
		res.err, res.failed = err.Error(), 1
		return
	}
	res.ok, res.bytes = 1, c.size
}
