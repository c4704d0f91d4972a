package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
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
	"spillway/internal/apitest"
	"spillway/internal/formdata"
	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/wire"
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

// fuzzReference parses body as the handler is meant to: the parts and
// their bytes are mime/multipart's, each file part stored under its base
// name. A part's file name is formdata.DispositionFileName's, which
// departs from mime.ParseMediaType's on purpose, and only for filename*
// (FuzzFormData holds it to that): it decodes ISO-8859-1 and falls back
// to filename beside an empty filename*, where mime.ParseMediaType drops
// the name and the file with it, and it refuses what it cannot decode,
// where mime.ParseMediaType drops it. Such a refusal, and two files under
// one name, are errors: the handler must not answer 201 to them.
func fuzzReference(t *testing.T, body []byte) ([]fuzzRefFile, error) {
	mr := multipart.NewReader(bytes.NewReader(body), fuzzBoundary)
	var files []fuzzRefFile
	names := make(map[string]bool)
	for range len(body) + 1 { // a part takes at least one byte
		p, err := mr.NextPart()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		cd := p.Header.Get("Content-Disposition")
		_, params, err := mime.ParseMediaType(cd)
		if err != nil {
			return nil, err
		}
		fn, err := formdata.DispositionFileName(cd)
		if err != nil {
			return nil, err
		}
		if fn != params["filename"] {
			// The departure is the intended one, never a file lost.
			require.Contains(t, strings.ToLower(cd), "filename*", "a name other than mime.ParseMediaType's without filename*")
			require.NotEmpty(t, fn, "mime.ParseMediaType finds a file the handler would drop")
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		if fn == "" {
			continue
		}
		name := path.Base(fn)
		if names[name] {
			return nil, fmt.Errorf("two files named %q", name)
		}
		names[name] = true
		files = append(files, fuzzRefFile{name: name, data: data})
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
		"--fzb\r\nContent-Disposition: form-data; name=\"f\"; filename*=ISO-8859-1''r%E9sum%E9.pdf\r\n\r\nx\r\n" + file("a.txt", "a") + end,
		"--fzb\r\nContent-Disposition: form-data; name=\"f\"; filename=\"r.pdf\"; filename*=iso-8859-1'fr'r%E9sum%E9.pdf\r\n\r\nx\r\n" + end,
		"--fzb\r\nContent-Disposition: form-data; name=\"f\"; filename*0*=ISO-8859-1''r%E9s; filename*1=\"um.pdf\"\r\n\r\nx\r\n" + end,
		"--fzb\r\nContent-Disposition: form-data; name=\"f\"; filename=\"r.pdf\"; filename*=UTF-8''\r\n\r\nx\r\n" + end,
		"--fzb\r\nContent-Disposition: form-data; name=\"f\"; filename*=windows-1252''r%E9sum%E9.pdf\r\n\r\nx\r\n" + file("a.txt", "a") + end,
		"--fzb\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"; filename*=UTF-8'bad\r\n\r\nx\r\n" + end,
		"--fzb\r\nContent-Disposition: form-data; name=\"f\"; filename*1=\"gap.txt\"\r\n\r\nx\r\n" + file("a.txt", "a") + end,
		"--fzb\r\nContent-Disposition: form-data; name=\"f\"; filename*=ISO-8859-1''a.txt\r\n\r\nx\r\n" + file("a.txt", "a") + end,
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
// the files mime/multipart.Reader parses from the same body, named as
// fuzzReference says.
func FuzzMultipart(f *testing.F) {
	for _, b := range fuzzSeedBodies() {
		f.Add(b)
	}
	// One handler for every input (inputs run one at a time in a
	// process); the upload directory is emptied after each.
	h := apitest.New(f, spool.Config{Threshold: fuzzThreshold, MemoryBudget: 1 << 20, MaxSize: fuzzMaxSize},
		api.Config{Logger: slog.New(slog.DiscardHandler), MaxParts: fuzzMaxParts})
	spoolDir, uploads := h.SpoolDir, h.Dir

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
		assert.Zero(t, h.Spooler.Stats().OpenFiles)
		assert.Zero(t, h.Spooler.Stats().MemoryInUse)
		require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
		want, refErr := fuzzReference(t, body)
		require.Less(t, rec.Code, 500, "%s", rec.Body)

		if rec.Code != http.StatusCreated {
			var e wire.ErrorResponse
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), "%s", rec.Body)
			require.NotEmpty(t, e.Error.Code)
			require.GreaterOrEqual(t, rec.Code, 400)
			uploadtest.RequireEmptyDir(t, uploads)
			return
		}

		require.NoError(t, refErr, "the handler stored what mime/multipart refuses")
		var got wire.UploadResponse
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
