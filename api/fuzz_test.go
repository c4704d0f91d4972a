package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/store/dirstore"
)

// The fuzzed handler's limits: small, so that short inputs reach the disk
// spool, the size limit and the part limit.
const (
	fuzzBoundary  = "fzb"
	fuzzThreshold = 64
	fuzzMaxSize   = 4096
	fuzzMaxParts  = 8
)

// fuzzRefFile is a file part as mime/multipart parses it.
type fuzzRefFile struct {
	name string
	data []byte
}

// fuzzReference parses body as the handler is meant to, with nothing but
// mime/multipart: file parts are those with a non-empty filename, stored
// under its base name.
func fuzzReference(body []byte) ([]fuzzRefFile, error) {
	mr := multipart.NewReader(bytes.NewReader(body), fuzzBoundary)
	var files []fuzzRefFile
	for range len(body) + 1 { // a part takes at least one byte
		p, err := mr.NextPart()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		if fn := params["filename"]; fn != "" {
			files = append(files, fuzzRefFile{name: path.Base(fn), data: data})
		}
	}
	panic("unreachable: more parts than bytes")
}

func fuzzSeedBodies() [][]byte {
	file := func(name, data string) string {
		return "--" + fuzzBoundary + "\r\nContent-Disposition: form-data; name=\"f\"; filename=\"" + name + "\"\r\n\r\n" + data + "\r\n"
	}
	field := "--" + fuzzBoundary + "\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nvalue\r\n"
	end := "--" + fuzzBoundary + "--\r\n"
	big := strings.Repeat("0123456789abcdef", 8) // over the threshold
	seeds := []string{
		file("a.txt", "hello") + end,
		field + file("a.txt", "one") + file("b.bin", big) + field + end,
		file("dir/base.txt", "x") + end,
		file("b.txt", "x--fzb y\r\n--fzbz\r\n--fzb-\x00\xff") + end,
		"preamble\r\n" + file("p.txt", "p") + end + "epilogue",
		strings.ReplaceAll(file("lf.txt", "lf")+end, "\r\n", "\n"),
		"--fzb\r\nContent-Disposition: form-data; name=\"f\"; filename=\"qp.txt\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=41=42\r\n" + end,
		"--fzb\r\nContent-Disposition: form-data; name=\"f\"; filename*=UTF-8''%C3%A9t%C3%A9.txt\r\n\r\nx\r\n" + end,
		file("../x", "x") + end,
		file(`C:\\x`, "x") + end,
		file("", "not a file") + end,
		file("same.txt", "1") + file("same.txt", "2") + end,
		file("big.bin", strings.Repeat("z", fuzzMaxSize+1)) + end,
		strings.Repeat(field, fuzzMaxParts) + file("late.txt", "x") + end,
		file("cut.txt", "no closing delimiter"),
		file("a.txt", "x") + "--" + fuzzBoundary + "\r\n",
		"--fzb\r\nContent-Type: text/plain\r\n\r\nno disposition\r\n" + end,
		end,
		"",
	}
	out := make([][]byte, len(seeds))
	for i, s := range seeds {
		out[i] = []byte(s)
	}
	return out
}

// FuzzMultipart feeds arbitrary bodies, under a fixed boundary, to the real
// handler. It never answers 5xx or panics, leaves the spool empty, stores
// nothing when it refuses, and when it answers 201 it has stored exactly
// the files mime/multipart.Reader parses from the same body.
func FuzzMultipart(f *testing.F) {
	for _, b := range fuzzSeedBodies() {
		f.Add(b)
	}
	// One handler for every input (inputs run one at a time in a
	// process); the upload directory is emptied after each.
	spoolDir, uploads := f.TempDir(), filepath.Join(f.TempDir(), "uploads")
	sp, err := spool.New(spool.Config{Dir: spoolDir, Threshold: fuzzThreshold, MemoryBudget: 1 << 20, MaxSize: fuzzMaxSize})
	require.NoError(f, err)
	st, _, err := dirstore.Open(uploads, dirstore.Options{})
	require.NoError(f, err)
	f.Cleanup(func() { st.Close() })
	h := api.New(api.Config{Spooler: sp, Store: st, Logger: slog.New(slog.DiscardHandler), MaxParts: fuzzMaxParts})

	f.Fuzz(func(t *testing.T, body []byte) {
		t.Cleanup(func() {
			entries, _ := os.ReadDir(uploads)
			for _, e := range entries {
				os.RemoveAll(filepath.Join(uploads, e.Name()))
			}
		})
		req := httptest.NewRequest(http.MethodPost, "/files", bytes.NewReader(body))
		req.Header.Set("Content-Type", "multipart/form-data; boundary="+fuzzBoundary)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		uploadtest.RequireEmptyDir(t, spoolDir)
		assert.Zero(t, sp.Stats().OpenFiles)
		assert.Zero(t, sp.Stats().MemoryInUse)
		require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
		want, refErr := fuzzReference(body)
		require.Less(t, rec.Code, 500, "%s", rec.Body)

		if rec.Code != http.StatusCreated {
			var e errorBody
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), "%s", rec.Body)
			require.NotEmpty(t, e.Error.Code)
			require.GreaterOrEqual(t, rec.Code, 400)
			uploadtest.RequireEmptyDir(t, uploads)
			return
		}

		require.NoError(t, refErr, "the handler stored what mime/multipart refuses")
		var got api.UploadResponse
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
		require.Len(t, got.Files, len(want))
		entries, err := os.ReadDir(uploads)
		require.NoError(t, err)
		require.Len(t, entries, len(want), "stored files")
		for i, w := range want {
			sum := sha256.Sum256(w.data)
			assert.Equal(t, w.name, got.Files[i].Name)
			assert.Equal(t, int64(len(w.data)), got.Files[i].Size)
			assert.Equal(t, hex.EncodeToString(sum[:]), got.Files[i].SHA256)
			stored, err := os.ReadFile(filepath.Join(uploads, w.name))
			require.NoError(t, err)
			require.True(t, bytes.Equal(w.data, stored), "%s: stored bytes differ from mime/multipart's", w.name)
		}
	})
}
