package web_test

// Uppy, as an application bundles it from npm, in headless Chromium:
// @uppy/aws-s3 against the Companion routes (/s3/) and @uppy/tus against
// /tus/, on the local server (directory store) and on the function under
// the local Function URL emulator (S3, versitygw). The page comes from
// the test's own server, another origin than the API's, so CORS is
// exercised as it is deployed.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
)

// uppyPackages are the npm packages the page is built from, pinned.
var uppyPackages = []string{
	"@uppy/core@6.3.1", "@uppy/dashboard@6.0.3", "@uppy/aws-s3@6.3.1", "@uppy/tus@6.0.0", "esbuild@0.28.2",
}

const uppyToken = "uppy-t0k"

// uppyBundle bundles testdata/uppy/entry.js with esbuild from the pinned
// packages. The entry goes in on stdin, so that esbuild resolves its
// imports in the packages' directory.
func uppyBundle(t *testing.T) []byte {
	t.Helper()
	dir := testservers.NodeModules(t, uppyPackages...)
	entry, err := os.Open(filepath.Join("testdata", "uppy", "entry.js"))
	require.NoError(t, err)
	defer entry.Close()
	cmd := exec.CommandContext(t.Context(), filepath.Join(dir, "node_modules", ".bin", "esbuild"),
		"--bundle", "--format=iife", "--log-level=warning", "--sourcefile=entry.js")
	cmd.Dir = dir
	cmd.Stdin = entry
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "esbuild: %s", stderr.String())
	return out
}

type uppyFile struct {
	name string
	size int64
}

// uppyPage serves the page, its bundle and the files' bytes (under
// /data/NAME), and returns its URL.
func uppyPage(t *testing.T, bundle []byte, dataDir string) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join("testdata", "uppy", "index.html"))
	})
	mux.HandleFunc("GET /bundle.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		w.Write(bundle)
	})
	mux.Handle("GET /data/", http.StripPrefix("/data/", http.FileServer(http.Dir(dataDir))))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// uppyTarget is a server Uppy uploads to.
type uppyTarget struct {
	url    string
	stored func(name string) string // where the bytes stored under name are
	gw     *testservers.S3          // the function's bucket; nil for the local server
}

func uppyLocalServer(t *testing.T, origin string) uppyTarget {
	dir := t.TempDir()
	srv := testservers.StartLocalServer(t, nil, []string{testservers.Build(t, testservers.LocalServer)},
		"--directory", dir, "--spool-dir", t.TempDir(), "--token", uppyToken, "--cors-origin", origin)
	return uppyTarget{url: srv.URL, stored: func(name string) string { return filepath.Join(dir, filepath.FromSlash(name)) }}
}

func uppyFunction(t *testing.T, origin string) uppyTarget {
	gw := testservers.StartS3(t)
	// The bucket's CORS rules as template.yaml's: the browser sends parts
	// straight to the presigned URLs and reads each part's ETag.
	_, err := gw.Client().PutBucketCors(t.Context(), &s3.PutBucketCorsInput{
		Bucket: aws.String(gw.Bucket),
		CORSConfiguration: &s3types.CORSConfiguration{CORSRules: []s3types.CORSRule{{
			AllowedMethods: []string{http.MethodPut},
			AllowedOrigins: []string{origin},
			AllowedHeaders: []string{"*"},
			ExposeHeaders:  []string{"ETag"},
			MaxAgeSeconds:  aws.Int32(3600),
		}}},
	})
	require.NoError(t, err)
	env := append(testservers.CleanEnv(), gw.Env()...)
	srv := testservers.StartLocalServer(t, env, []string{testservers.Build(t, testservers.LocalServer)},
		"--function", testservers.Build(t, testservers.Function), "--rie", testservers.Tool(t, testservers.RIE),
		"--bucket", gw.Bucket, "--spool-dir", t.TempDir(), "--token", uppyToken, "--cors-origin", origin)
	return uppyTarget{url: srv.URL, stored: gw.ObjectPath, gw: gw}
}

// uppyOutcome is what Uppy said of one upload.
type uppyOutcome struct {
	Successful []struct {
		Name      string          `json:"name"`
		Body      json.RawMessage `json:"body"`
		UploadURL string          `json:"uploadURL"`
	} `json:"successful"`
	Failed []struct {
		Name  string `json:"name"`
		Error string `json:"error"`
	} `json:"failed"`
}

// uppyResult is what the page reports: the upload, and with losePart or
// losePatch the first try's outcome, the sends of each part number (aws-s3)
// or each PATCH and the creations (tus), and Uppy's errors.
type uppyResult struct {
	uppyOutcome
	FirstTry  *uppyOutcome `json:"firstTry"`
	Sends     map[int]int  `json:"sends"`
	Patches   []tusPatch   `json:"patches"`
	Creations int          `json:"creations"`
	Logged    []string     `json:"logged"`
}

// tusPatch is one PATCH @uppy/tus sent: its Upload-Offset, and whether
// the page made it fail as a lost connection.
type tusPatch struct {
	Offset int64 `json:"offset"`
	Lost   bool  `json:"lost"`
}

// runUppy loads the page in a fresh browser, uploads files through plugin
// to tg, and checks that each file's stored bytes are the ones sent.
func runUppy(t *testing.T, page string, tg uppyTarget, dataDir string, opts map[string]any, files []uppyFile) uppyResult {
	t.Helper()
	want := make(map[string]string)
	var list []map[string]string
	for i, f := range files {
		p := filepath.Join(dataDir, f.name)
		uploadtest.File{Seed: uint64(i + 1), Size: f.size}.WriteFile(t, p)
		want[f.name] = fileSHA256(t, p)
		list = append(list, map[string]string{"name": f.name, "url": page + "/data/" + f.name})
	}
	opts["endpoint"] = tg.url
	opts["token"] = uppyToken
	opts["files"] = list
	arg, err := json.Marshal(opts)
	require.NoError(t, err)

	ctx := newBrowser(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(page+"/"), chromedp.WaitReady(chromedp.CSS("#dashboard"))))
	eval[bool](t, ctx, fmt.Sprintf(`runUppy(%s).catch((e) => {
		const pre = document.createElement('pre'); pre.id = 'result'
		pre.textContent = JSON.stringify({successful: [], failed: [{name: '', error: String(e)}]})
		document.body.append(pre)
	}), true`, arg))
	wait(t, ctx, "#result")
	var res uppyResult
	require.NoError(t, json.Unmarshal([]byte(text(t, ctx, "#result")), &res))
	require.Empty(t, res.Failed, "Uppy's failures")
	require.Len(t, res.Successful, len(files))
	for name, sum := range want {
		assert.Equal(t, sum, fileSHA256(t, tg.stored(name)), "the stored bytes of %s", name)
	}
	if tg.gw != nil {
		tg.gw.RequireNoMultipartUploads(t)
	}
	return res
}

func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestUppy uploads several files with each plugin, and with @uppy/aws-s3
// both in parts (multipart on) and whole (multipart off), to each
// entrypoint.
func TestUppy(t *testing.T) {
	findChromium(t)
	bundle := uppyBundle(t)
	for _, entry := range []struct {
		name  string
		start func(*testing.T, string) uppyTarget
	}{
		{"local server", uppyLocalServer},
		{"function", uppyFunction},
	} {
		t.Run(entry.name, func(t *testing.T) {
			dataDir := t.TempDir()
			page := uppyPage(t, bundle, dataDir)
			tg := entry.start(t, page)

			t.Run("aws-s3 multipart", func(t *testing.T) {
				res := runUppy(t, page, tg, dataDir, map[string]any{"plugin": "aws-s3", "multipart": true}, []uppyFile{
					{"mp-small.bin", 300 << 10},    // one part
					{"mp-large.bin", 11<<20 + 123}, // three parts of Uppy's 5 MiB
					{"mp-exact.bin", 5 << 20},      // exactly one part
				})
				for _, s := range res.Successful {
					var body struct{ Key, Location string }
					require.NoError(t, json.Unmarshal(s.Body, &body))
					assert.Equal(t, s.Name, body.Key)
					assert.Equal(t, tg.url+"/files/"+s.Name, body.Location)
				}
			})
			t.Run("aws-s3 whole", func(t *testing.T) {
				res := runUppy(t, page, tg, dataDir, map[string]any{"plugin": "aws-s3", "multipart": false}, []uppyFile{
					{"put-small.bin", 100 << 10},
					{"put-large.bin", 3<<20 + 7}, // on disk in the spool; within a Function URL's request
				})
				for _, s := range res.Successful {
					var body struct{ Key string }
					require.NoError(t, json.Unmarshal(s.Body, &body))
					assert.Equal(t, s.Name, body.Key)
					assert.Equal(t, tg.url+"/s3/objects/"+s.Name, s.UploadURL, "the URL the plugin derives, which serves the file")
				}
			})
			// A lost connection mid-upload, then Retry: the upload goes on
			// from the parts the server lists, within the page's session.
			t.Run("aws-s3 resume", func(t *testing.T) {
				res := runUppy(t, page, tg, dataDir, map[string]any{"plugin": "aws-s3", "multipart": true, "losePart": 2}, []uppyFile{
					{"resumed.bin", 12 << 20},
				})
				require.NotNil(t, res.FirstTry)
				require.Len(t, res.FirstTry.Failed, 1, "the first try fails at part 2")
				assert.Empty(t, res.FirstTry.Successful)
				assert.NotEmpty(t, res.Logged, "Uppy logs the failure")
				assert.Equal(t, 1, res.Sends[1], "part 1 is sent once: the retry lists it as received")
				assert.Greater(t, res.Sends[2], 1, "part 2 is sent again")
				assert.Equal(t, 1, res.Sends[3])
			})
			t.Run("tus", func(t *testing.T) {
				runUppy(t, page, tg, dataDir, map[string]any{"plugin": "tus", "chunkSize": 4 << 20}, []uppyFile{
					{"tus-small.bin", 200 << 10},
					{"tus-large.bin", 9<<20 + 5},
				})
			})
			// The connection lost at the second chunk, past every retry of
			// the plugin's, then Retry: the upload resumes at the server's
			// offset, with no new creation and no chunk sent twice.
			t.Run("tus resume", func(t *testing.T) {
				const chunk = 4 << 20
				res := runUppy(t, page, tg, dataDir, map[string]any{"plugin": "tus", "chunkSize": chunk, "losePatch": 2}, []uppyFile{
					{"tus-resumed.bin", 3*chunk + 9},
				})
				require.NotNil(t, res.FirstTry)
				require.Len(t, res.FirstTry.Failed, 1, "the first try fails at the second chunk")
				assert.Empty(t, res.FirstTry.Successful)
				assert.NotEmpty(t, res.Logged, "Uppy logs the failure")
				assert.Equal(t, 1, res.Creations, "the retry created a new upload rather than resuming")
				var sent []int64
				lost := 0
				for _, p := range res.Patches {
					if p.Lost {
						lost++
						assert.Equal(t, int64(chunk), p.Offset, "a lost PATCH")
						continue
					}
					sent = append(sent, p.Offset)
				}
				t.Logf("PATCHes: %+v", res.Patches)
				assert.Greater(t, lost, 1, "the plugin retried the lost chunk")
				assert.Equal(t, []int64{0, chunk, 2 * chunk, 3 * chunk}, sent, "the offsets of the PATCHes that arrived")
			})
		})
	}
}
