package apierr_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/apierr"
	"spillway/wire"
)

// Every code that package wire declares has a status and a message, and
// every code of the catalogue is one that wire declares.
func TestEveryWireCodeIsCatalogued(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "../wire/errors.go", nil, 0)
	require.NoError(t, err)
	var declared []wire.Code
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			v := s.(*ast.ValueSpec)
			if id, ok := v.Type.(*ast.Ident); !ok || id.Name != "Code" {
				continue
			}
			for _, val := range v.Values {
				code, err := strconv.Unquote(val.(*ast.BasicLit).Value)
				require.NoError(t, err)
				declared = append(declared, wire.Code(code))
			}
		}
	}
	slices.Sort(declared)
	require.NotEmpty(t, declared)
	assert.Equal(t, declared, apierr.Codes())
	for _, c := range declared {
		e := apierr.Of(c)
		assert.Equal(t, c, e.Code)
		assert.NotZero(t, e.Status, c)
		assert.NotEmpty(t, e.Message, c)
	}
}

// README.md's error table and the catalogue agree, row by row: each code's
// status and fixed message are the ones the README promises.
func TestCatalogueMatchesTheREADME(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "\n### Errors\n")
	require.True(t, ok, "README.md has no Errors section")
	row := regexp.MustCompile("(?m)^\\| (\\d{3}) \\| `([a-z_]+)` \\| (?:[^|\\\\]|\\\\.)* \\| (.*) \\|$")
	documented := map[wire.Code]bool{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		code := wire.Code(m[2])
		documented[code] = true
		status, _ := strconv.Atoi(m[1])
		message := html.UnescapeString(strings.ReplaceAll(m[3], `\|`, "|"))
		e := apierr.Of(code)
		assert.Equal(t, code, e.Code, "README documents %s, which the catalogue lacks", code)
		assert.Equal(t, status, e.Status, code)
		assert.Equal(t, message, e.Message, code)
	}
	for _, c := range apierr.Codes() {
		assert.True(t, documented[c], "%s is not in README.md's error table", c)
	}
}

// An error value of the catalogue, however wrapped, is answered with its
// code's status and message and the request ID; the detail never is.
func TestWriteError(t *testing.T) {
	for _, target := range []error{apierr.ErrUnauthorized, apierr.ErrBadRequest, apierr.ErrUnavailable,
		apierr.ErrBadEvent, apierr.ErrResponseTooLarge, apierr.New(wire.CodeBusy, "too busy")} {
		code, ok := apierr.CodeOf(target)
		require.True(t, ok)
		t.Run(string(code), func(t *testing.T) {
			want := apierr.Of(code)
			rec := httptest.NewRecorder()
			err := fmt.Errorf("lambdahttp: event secret-detail: %w", target)
			apierr.WriteError(apierr.WithRequestID(t.Context(), "req-1"), rec, err)

			assert.Equal(t, want.Status, rec.Code)
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			assert.Equal(t, "req-1", rec.Header().Get("X-Request-Id"))
			if want.Status == http.StatusServiceUnavailable {
				assert.Equal(t, "1", rec.Header().Get("Retry-After"))
			} else {
				assert.Empty(t, rec.Header().Get("Retry-After"))
			}
			var got wire.ErrorResponse
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
			assert.Equal(t, wire.Error{Code: code, Message: want.Message, RequestID: "req-1"}, got.Error)
			assert.NotContains(t, rec.Body.String(), "secret-detail")
		})
	}
}

// Without a request ID in the context, none is sent.
func TestWriteErrorWithoutRequestID(t *testing.T) {
	rec := httptest.NewRecorder()
	apierr.WriteError(t.Context(), rec, apierr.ErrBadRequest)
	assert.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Empty(t, rec.Header().Get("X-Request-Id"))
	assert.NotContains(t, rec.Body.String(), "request_id")
}

// An *Error is answered as it is, its limit included; anything else that
// is not of the catalogue is internal.
func TestFrom(t *testing.T) {
	e := apierr.Of(wire.CodeTooLarge)
	e.Limit = 1000
	assert.Same(t, e, apierr.From(fmt.Errorf("wrapped: %w", e)))

	rec := httptest.NewRecorder()
	apierr.WriteError(t.Context(), rec, e)
	assert.JSONEq(t, `{"error":{"code":"too_large","message":"`+e.Message+`","limit":1000}}`, rec.Body.String())

	internal := apierr.From(errors.New("dirstore: open /srv/x: input/output error"))
	assert.Equal(t, wire.CodeInternal, internal.Code)
	assert.Equal(t, http.StatusInternalServerError, internal.Status)
	assert.Equal(t, wire.CodeInternal, apierr.Of("no_such_code").Code)
}

func TestRequestID(t *testing.T) {
	assert.Empty(t, apierr.RequestID(t.Context()))
	assert.Equal(t, "abc", apierr.RequestID(apierr.WithRequestID(t.Context(), "abc")))
}
