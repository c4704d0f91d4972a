package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/store/dirstore"
	"spillway/wire"
)

// mpStyle builds a multipart/form-data body the way one kind of client
// does: its boundary, its part headers, its form fields.
type mpStyle struct {
	name     string
	boundary string
	field    string // a form field the client sends before the files, or ""
	fileType string // the Content-Type of a file part
}

var mpStyles = []mpStyle{
	// curl -F 'f=@file': a dashed hex boundary, application/octet-stream.
	{name: "curl", boundary: "------------------------3a5f0c1d2e4b6a79", fileType: "application/octet-stream"},
	// A browser's form: a WebKit boundary, a text field, the file's type.
	{name: "browser", boundary: "----WebKitFormBoundaryx7Yk2lq9VbQ3ZzAa", field: "note", fileType: "application/pdf"},
}

type mpNamedPart struct {
	disposition string // the Content-Disposition parameters after form-data
	data        []byte
}

func (st mpStyle) body(parts ...mpNamedPart) string {
	var b strings.Builder
	if st.field != "" {
		fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=%q\r\n\r\nsome text\r\n", st.boundary, st.field)
	}
	for _, p := range parts {
		fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; %s\r\nContent-Type: %s\r\n\r\n%s\r\n", st.boundary, p.disposition, st.fileType, p.data)
	}
	fmt.Fprintf(&b, "--%s--\r\n", st.boundary)
	return b.String()
}

// TestMultipartFilenameStar: a part named by filename* in any charset RFC
// 8187 requires is stored under its decoded name, beside the other files;
// one whose filename* cannot be decoded refuses the whole request. No file
// part is ever taken for a form field and dropped while the rest is
// stored.
func TestMultipartFilenameStar(t *testing.T) {
	cases := []struct {
		name, disposition string
		want              string // the stored name; "" when the request is refused
	}{
		{"ISO-8859-1", `name="f"; filename*=ISO-8859-1''r%E9sum%E9.pdf`, "résumé.pdf"},
		{"iso-8859-1 with a language", `name="f"; filename*=iso-8859-1'fr'%C9t%E9.pdf`, "Été.pdf"},
		{"ISO-8859-1 beside filename", `name="f"; filename="resume.pdf"; filename*=ISO-8859-1''r%E9sum%E9.pdf`, "résumé.pdf"},
		{"UTF-8", `name="f"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`, "résumé.pdf"},
		{"ISO-8859-1 continuation", `name="f"; filename*0*=ISO-8859-1''r%E9s; filename*1*=um%E9; filename*2=".pdf"`, "résumé.pdf"},
		{"plain continuation", `name="f"; filename*0="res"; filename*1="ume.pdf"`, "resume.pdf"},
		{"empty filename* beside filename", `name="f"; filename="resume.pdf"; filename*=UTF-8''`, "resume.pdf"},
		{"unsupported charset", `name="f"; filename*=windows-1252''r%E9sum%E9.pdf`, ""},
		{"unsupported charset beside filename", `name="f"; filename="resume.pdf"; filename*=KOI8-R''%D2.pdf`, ""},
		{"no charset", `name="f"; filename*=''resume.pdf`, ""},
		{"one quote", `name="f"; filename*=UTF-8'resume.pdf`, ""},
		{"no quotes", `name="f"; filename*=resume.pdf`, ""},
		{"bad percent-escape", `name="f"; filename*=UTF-8''r%G9sume.pdf`, ""},
		{"malformed beside filename", `name="f"; filename="resume.pdf"; filename*=UTF-8'bad`, ""},
		{"continuation without its first piece", `name="f"; filename*1="resume.pdf"`, ""},
		{"continuation with a gap", `name="f"; filename*0="res"; filename*2="ume.pdf"`, ""},
		{"filename* and continuations", `name="f"; filename*=UTF-8''a.pdf; filename*0="b.pdf"`, ""},
		{"not a continuation number", `name="f"; filename*x="resume.pdf"`, ""},
	}
	before := uploadtest.File{Name: "before.txt", Seed: 1, Size: 100}.Bytes()
	named := uploadtest.File{Seed: 2, Size: spool.DefaultThreshold + 1}.Bytes() // spooled to disk
	after := uploadtest.File{Name: "after.bin", Seed: 3, Size: 1000}.Bytes()
	for _, st := range mpStyles {
		for _, tc := range cases {
			t.Run(st.name+"/"+tc.name, func(t *testing.T) {
				s := newServer(t, options{})
				body := st.body(
					mpNamedPart{`name="f"; filename="before.txt"`, before},
					mpNamedPart{tc.disposition, named},
					mpNamedPart{`name="f"; filename="after.bin"`, after},
				)
				resp, respBody := s.mpPost(t, st.boundary, body)
				s.waitServed(t)
				uploadtest.RequireEmptyDir(t, s.spoolDir)
				if tc.want == "" {
					requireError(t, resp, respBody, http.StatusBadRequest, "bad_multipart")
					s.requireLogged(t, resp, "filename")
					uploadtest.RequireEmptyDir(t, s.dir)
					return
				}
				require.Equal(t, http.StatusCreated, resp.StatusCode, string(respBody))
				var got wire.UploadResponse
				require.NoError(t, json.Unmarshal(respBody, &got))
				require.Len(t, got.Files, 3)
				assert.Equal(t, tc.want, got.Files[1].Name)
				uploadtest.RequireDirHolds(t, s.dir, "before.txt", tc.want, "after.bin")
				for name, data := range map[string][]byte{"before.txt": before, tc.want: named, "after.bin": after} {
					stored, err := os.ReadFile(filepath.Join(s.dir, name))
					require.NoError(t, err)
					require.Equal(t, data, stored, "%s stored differs", name)
				}
			})
		}
	}
}

// TestMultipartDuplicateNames: two file parts that store under one name
// (the same filename, two paths with one base name, or one name in two
// encodings) are refused whole with 400 bad_multipart, with --overwrite as
// without, and an existing file of that name is left as it was.
func TestMultipartDuplicateNames(t *testing.T) {
	pairs := [][2]string{
		{`name="f"; filename="same.txt"`, `name="g"; filename="same.txt"`},
		{`name="f"; filename="a/same.txt"`, `name="f"; filename="b/same.txt"`},
		{`name="f"; filename*=ISO-8859-1''same.txt`, `name="f"; filename*=UTF-8''same.txt`},
	}
	one := uploadtest.File{Seed: 4, Size: spool.DefaultThreshold + 1}.Bytes()
	two := uploadtest.File{Seed: 5, Size: 10}.Bytes()
	for _, overwrite := range []bool{false, true} {
		for _, st := range mpStyles {
			t.Run(fmt.Sprintf("overwrite=%v/%s", overwrite, st.name), func(t *testing.T) {
				s := newServer(t, options{store: dirstore.Options{Overwrite: overwrite}})
				for _, p := range pairs {
					resp, body := s.mpPost(t, st.boundary, st.body(mpNamedPart{p[0], one}, mpNamedPart{p[1], two}))
					requireError(t, resp, body, http.StatusBadRequest, "bad_multipart")
					s.waitServed(t)
					s.requireLogged(t, resp, `two file parts are named "same.txt"`)
					s.requireNothingLeft(t)
				}
				if !overwrite {
					return
				}
				// An existing file that the request could overwrite stays.
				require.NoError(t, os.WriteFile(filepath.Join(s.dir, "same.txt"), []byte("original"), 0o644))
				resp, body := s.mpPost(t, st.boundary, st.body(mpNamedPart{pairs[0][0], one}, mpNamedPart{pairs[0][1], two}))
				requireError(t, resp, body, http.StatusBadRequest, "bad_multipart")
				s.waitServed(t)
				stored, err := os.ReadFile(filepath.Join(s.dir, "same.txt"))
				require.NoError(t, err)
				assert.Equal(t, "original", string(stored))
				uploadtest.RequireDirHolds(t, s.dir, "same.txt")
				uploadtest.RequireEmptyDir(t, s.spoolDir)
			})
		}
	}
}
