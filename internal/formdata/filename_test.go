package formdata

import (
	"mime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDispositionFileName(t *testing.T) {
	for _, tc := range []struct{ cd, want string }{
		{`form-data; name="f"; filename="a.txt"`, "a.txt"},
		{`form-data; name="f"`, ""},
		{`form-data; name="f"; filename=""`, ""},
		{`form-data; name="f"; filename*=UTF-8''`, ""},
		{`attachment; filename=a.txt`, "a.txt"},
		{`form-data; filename="C:\dev\x.txt"`, `C:\dev\x.txt`},
		{`form-data; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`, "résumé.pdf"},
		{`form-data; filename*=utf-8'en'r%C3%A9sum%C3%A9.pdf`, "résumé.pdf"},
		{`form-data; filename*=US-ASCII''a%20b.txt`, "a b.txt"},
		{`form-data; filename*=ISO-8859-1''r%E9sum%E9.pdf`, "résumé.pdf"},
		{`form-data; filename*=iso-8859-1'fr'%C9t%E9.txt`, "Été.txt"},
		{`form-data; filename*="ISO-8859-1''r%E9sum%E9.pdf"`, "résumé.pdf"},
		{`form-data; FILENAME*=ISO-8859-1''%FF.txt`, "ÿ.txt"},
		// filename* wins over filename, either order; an empty one does not.
		{`form-data; filename="resume.pdf"; filename*=ISO-8859-1''r%E9sum%E9.pdf`, "résumé.pdf"},
		{`form-data; filename*=UTF-8''x.txt; filename="y.txt"`, "x.txt"},
		{`form-data; filename="y.txt"; filename*=UTF-8''`, "y.txt"},
		// RFC 2231 continuations.
		{`form-data; filename*0="ab"; filename*1=".txt"`, "ab.txt"},
		{`form-data; filename*0*=ISO-8859-1''r%E9s; filename*1*=um%E9; filename*2=".pdf"`, "résumé.pdf"},
		{`form-data; filename*1*=%A9.txt; filename*0*=UTF-8''%C3`, "é.txt"}, // a character split across pieces
		{`form-data; filename="plain.txt"; filename*0="cont.txt"`, "cont.txt"},
		{`form-data; filename*0="a.txt"; filename*0="a.txt"`, "a.txt"}, // ParseMediaType allows an equal repeat
		{`form-data; filenames="x"`, ""},
	} {
		t.Run(tc.cd, func(t *testing.T) {
			got, err := DispositionFileName(tc.cd)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			checkDispositionFileName(t, tc.cd)
		})
	}
}

func TestDispositionFileNameRefuses(t *testing.T) {
	for _, cd := range []string{
		"",
		`form-data; filename="a`,
		`form-data; filename="a"; filename="b"`,
		`form-data; filename*=windows-1252''r%E9sum%E9.pdf`,
		`form-data; filename*=UTF-16''%00a`,
		`form-data; filename*=''a.txt`,
		`form-data; filename*=a.txt`,
		`form-data; filename*=UTF-8'a.txt`,
		`form-data; filename*=UTF-8''a%2.txt`,
		`form-data; filename*=UTF-8''a%zz.txt`,
		`form-data; filename*=UTF-8''a%`,
		`form-data; filename="good.txt"; filename*=UTF-8'bad`,
		`form-data; filename="good.txt"; filename*=latin1''x`,
		`form-data; filename*1="x.txt"`,
		`form-data; filename*0="a"; filename*2="b"`,
		`form-data; filename*0="a"; filename*0*=UTF-8''b`,
		`form-data; filename*00="a"`,
		`form-data; filename*x="a"`,
		`form-data; filename**="a"`,
		`form-data; filename*-1="a"`,
		`form-data; filename*99999999999999999999="a"`,
		`form-data; filename*=UTF-8''a; filename*0="b"`,
		`form-data; filename*0="a"; filename*1*=%41`,
		`form-data; filename*0*=koi8-r''%C1`,
	} {
		t.Run(cd, func(t *testing.T) {
			_, err := DispositionFileName(cd)
			require.ErrorIs(t, err, ErrMalformed)
			checkDispositionFileName(t, cd)
		})
	}
}

// checkDispositionFileName holds DispositionFileName to mime.ParseMediaType
// and bounds where they differ: only in a value with a "filename*"
// parameter, found here by its text rather than by the parser under test,
// and never by finding no file where ParseMediaType finds one.
func checkDispositionFileName(t *testing.T, cd string) {
	t.Helper()
	got, err := DispositionFileName(cd)
	_, params, goErr := mime.ParseMediaType(cd)
	if goErr != nil {
		require.ErrorIs(t, err, ErrMalformed, "ParseMediaType refuses it")
		return
	}
	starred := strings.Contains(strings.ToLower(cd), "filename*")
	if !starred {
		require.NoError(t, err)
		require.Equal(t, params["filename"], got, "no filename*: ParseMediaType's name")
		return
	}
	if err != nil {
		require.ErrorIs(t, err, ErrMalformed)
		return // refused whole: nothing is lost
	}
	if params["filename"] != "" {
		require.NotEmpty(t, got, "a file ParseMediaType finds")
	}
}

func FuzzDispositionFileName(f *testing.F) {
	for _, s := range []string{
		`form-data; name="f"; filename="a.txt"`,
		`form-data; filename*=ISO-8859-1''r%E9sum%E9.pdf`,
		`form-data; filename="a"; filename*=UTF-8''%C3%A9`,
		`form-data; filename*0*=ISO-8859-1''r%E9s; filename*1*=um%E9; filename*2=".pdf"`,
		`form-data; filename*=UTF-8'bad`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cd string) {
		checkDispositionFileName(t, cd)
	})
}
