package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
)

// tus-js-client, the tus project's own client, against both entrypoints:
// a 64 MiB file in 4 MiB chunks (the size to use on a Function URL),
// killed mid-PATCH halfway through, then run again with the same URL
// storage; it must resume from the server's offset, not start again, and
// the stored file must be the file. Run a third time with the URL still in
// its storage (removeFingerprintOnSuccess off, as in a browser's default),
// it must find the upload complete and send nothing.

const tusJSClient = "tus-js-client@4.3.1"

func TestTusJSClientDirectoryStore(t *testing.T) { caseTusJSClient(t, startDirTarget(t)) }

func TestTusJSClientFunctionURL(t *testing.T) { caseTusJSClient(t, startFunctionTarget(t)) }

// tusEvent is one line of testdata/tus/upload.js.
type tusEvent struct {
	Ev      string  `json:"ev"`
	Method  string  `json:"method"`
	URL     string  `json:"url"`
	Status  int     `json:"status"`
	Offset  *string `json:"offset"`
	SHA256  *string `json:"sha256"`
	File    *string `json:"file"`
	Count   int     `json:"count"`
	Message string  `json:"message"`
}

// runTusJS runs upload.js and returns its events and whether it exited
// cleanly.
func runTusJS(t *testing.T, env ...string) ([]tusEvent, error) {
	t.Helper()
	cmd := exec.Command(testservers.Node(t), filepath.Join("testdata", "tus", "upload.js"))
	cmd.Env = append(testservers.CleanEnv(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.SysProcAttr = testservers.DieWithParent()
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var events []tusEvent
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var e tusEvent
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e), sc.Text())
		events = append(events, e)
	}
	err = cmd.Wait()
	t.Logf("upload.js: %d events, exit %v, stderr: %s", len(events), err, stderr.String())
	return events, err
}

func caseTusJSClient(t *testing.T, tg *target) {
	modules := testservers.NodeModules(t, tusJSClient)
	const size = 64 << 20
	const name = "tus/big.bin"
	f := uploadtest.File{Name: name, Size: size, Seed: 64}
	src := filepath.Join(t.TempDir(), "big.bin")
	sum := f.WriteFile(t, src)
	env := []string{
		"TUS_MODULES=" + modules,
		"TUS_ENDPOINT=" + tg.srv.URL + "/tus/",
		"TUS_FILE=" + src,
		"TUS_NAME=" + name,
		"TUS_TOKEN=" + token,
		"TUS_URLS=" + filepath.Join(t.TempDir(), "tus-urls.json"),
		"TUS_CHUNK=" + strconv.Itoa(4<<20),
	}

	// Killed with SIGKILL mid-chunk, past half the file.
	first, err := runTusJS(t, append(env, "TUS_KILL_AT="+strconv.Itoa(size/2+(1<<20)))...)
	require.Error(t, err, "the first run was to be killed")
	require.NotEmpty(t, first)
	assert.Equal(t, "kill", first[len(first)-1].Ev)
	assert.Equal(t, methodPOST, first[1].Method, "the first run creates the upload")
	_, statErr := os.Stat(tg.storedPath(name))
	require.True(t, os.IsNotExist(statErr), "stored before the upload finished")

	// Run again: it finds the upload in its URL storage and resumes, and
	// keeps the URL once it is done.
	second, err := runTusJS(t, append(env, "TUS_KEEP_URL=1")...)
	require.NoError(t, err)
	require.Equal(t, "previous", second[0].Ev)
	require.Equal(t, 1, second[0].Count, "the URL storage kept the upload")
	var headOffset, resumedAt int64 = -1, -1
	var done *tusEvent
	for i, e := range second {
		require.NotEqual(t, "error", e.Ev, e.Message)
		if e.Ev == "req" {
			require.NotEqual(t, methodPOST, e.Method, "the second run created a new upload rather than resuming")
		}
		if e.Ev == "res" && e.Method == "HEAD" && e.Status == 200 && resumedAt < 0 {
			headOffset, err = strconv.ParseInt(*e.Offset, 10, 64)
			require.NoError(t, err)
		}
		if e.Ev == "req" && e.Method == "PATCH" && resumedAt < 0 {
			resumedAt, err = strconv.ParseInt(*e.Offset, 10, 64)
			require.NoError(t, err)
		}
		if e.Ev == "res" && e.SHA256 != nil {
			done = &second[i]
		}
	}
	require.Positive(t, headOffset, "the server kept nothing of the first run")
	require.Less(t, headOffset, int64(size))
	assert.GreaterOrEqual(t, headOffset, int64(size/2), "the server lost chunks it had acknowledged")
	assert.Equal(t, headOffset, resumedAt, "the client did not resume at the server's offset")
	t.Logf("resumed at %d of %d bytes", resumedAt, size)
	require.NotNil(t, done, "no response carried the stored file's SHA-256")
	assert.Equal(t, sum, *done.SHA256)
	assert.Equal(t, "/files/"+name, *done.File)
	assert.Equal(t, "done", second[len(second)-1].Ev)

	got, n, err := uploadtest.HashFile(tg.storedPath(name))
	require.NoError(t, err)
	assert.Equal(t, int64(size), n)
	assert.Equal(t, sum, got)

	// The same file again, its URL still stored: the HEAD says the upload
	// is complete, and what it became, and nothing is sent again.
	third, err := runTusJS(t, env...)
	require.NoError(t, err)
	require.Equal(t, "previous", third[0].Ev)
	require.Equal(t, 1, third[0].Count, "the URL storage kept the finished upload")
	var head *tusEvent
	for i, e := range third {
		require.NotEqual(t, "error", e.Ev, e.Message)
		if e.Ev == "req" {
			require.Equal(t, http.MethodHead, e.Method, "the third run sent more than a HEAD")
		}
		if e.Ev == "res" && e.Method == http.MethodHead {
			head = &third[i]
		}
	}
	require.NotNil(t, head)
	require.Equal(t, http.StatusOK, head.Status)
	assert.Equal(t, strconv.Itoa(size), *head.Offset)
	require.NotNil(t, head.SHA256)
	assert.Equal(t, sum, *head.SHA256)
	assert.Equal(t, "/files/"+name, *head.File)
	assert.Equal(t, "done", third[len(third)-1].Ev)
	tg.finish(t, name)
}

const methodPOST = http.MethodPost

var (
	tusObjectRE = regexp.MustCompile(`^\.spillway/uploads/tus/[A-Z2-7]{26}\.json$`)
)

// finishedTusObject reports whether key is the record a finished tus
// upload keeps in the bucket until it expires.
func finishedTusObject(t *testing.T, gw *testservers.S3, key string) bool {
	t.Helper()
	if !tusObjectRE.MatchString(key) {
		return false
	}
	out, err := gw.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(gw.Bucket), Key: aws.String(key)})
	require.NoError(t, err)
	defer out.Body.Close()
	var rec struct {
		Finished string `json:"finished"`
		Parts    []any  `json:"parts"`
		Pending  string `json:"pending"`
	}
	return json.NewDecoder(out.Body).Decode(&rec) == nil && rec.Finished != "" && len(rec.Parts) == 0 && rec.Pending == ""
}
