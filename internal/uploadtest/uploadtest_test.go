package uploadtest

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFormBodyIsExactAndParses(t *testing.T) {
	files := []File{{Name: "a.bin", Seed: 1, Size: 1000}, {Name: "empty.bin", Seed: 2}, {Name: "b.txt", Seed: 3, Size: 70_000, Text: true}}
	for _, note := range []bool{false, true} {
		form := Form{Note: note}
		for _, f := range files {
			form.Parts = append(form.Parts, Part{Field: "f-" + f.Name, Name: f.Name, Body: f.Reader(), Size: f.Size})
		}
		ctype, body, length := form.Body()
		raw, err := io.ReadAll(body)
		require.NoError(t, err)
		require.Equal(t, length, int64(len(raw)), "the declared length")

		_, params, err := mime.ParseMediaType(ctype)
		require.NoError(t, err)
		mr := multipart.NewReader(bytes.NewReader(raw), params["boundary"])
		var got []string
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			if p.FileName() == "" {
				assert.True(t, note, "a plain field only with Note")
				assert.Equal(t, "note", p.FormName())
				continue
			}
			f := files[len(got)]
			assert.Equal(t, "f-"+f.Name, p.FormName())
			RequireContent(t, f, p)
			got = append(got, p.FileName())
		}
		assert.Equal(t, []string{"a.bin", "empty.bin", "b.txt"}, got)
	}
}

func TestMultipartKeepsItsBoundary(t *testing.T) {
	ctype, _, _ := Multipart([]File{{Name: "x", Seed: 1, Size: 1}})
	assert.Equal(t, "multipart/form-data; boundary="+Boundary, ctype)
}

func TestWriteFileAndHashes(t *testing.T) {
	f := File{Seed: 9, Size: 3<<20 + 1}
	path := filepath.Join(t.TempDir(), "f.bin")
	sum := f.WriteFile(t, path)
	assert.Equal(t, f.SHA256(), sum)
	assert.Equal(t, sum, SHA256File(t, path))
	_, n, err := HashFile(path)
	require.NoError(t, err)
	assert.Equal(t, f.Size, n)
	RequireFile(t, f, path)
	_, _, err = HashFile(filepath.Join(t.TempDir(), "missing"))
	require.Error(t, err)
}
