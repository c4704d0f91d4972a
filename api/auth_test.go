package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/internal/jwtauth"
	"spillway/internal/jwtauth/jwtauthtest"
	"spillway/internal/uploadtest"
	"spillway/store"
	"spillway/wire"
)

// newJWTServer serves the directory store with JWTs of is, spaces named by
// the sub claim, and the shared token "admin-token".
func newJWTServer(t *testing.T, is *jwtauthtest.Issuer, o options) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := jwtauth.New(ctx, jwtauth.Config{JWKSURL: is.URL, Issuer: jwtauthtest.IssuerName,
		Audience: jwtauthtest.Audience, SpaceClaim: "sub"})
	require.NoError(t, err)
	o.auth = v
	if o.token == "" {
		o.token = "admin-token"
	}
	return newServer(t, o)
}

func TestUserIsolationDirectoryStore(t *testing.T) {
	is := jwtauthtest.New(t)
	s := newJWTServer(t, is, options{})
	// s.served buffers the statuses of the requests, far more than these.
	jwtauthtest.RequireIsolation(t, jwtauthtest.Target{
		URL: s.URL, A: is.Token(t, "alice", nil), B: is.Token(t, "bob", nil),
		SpaceA: "alice/", SpaceB: "bob/", Admin: "admin-token",
	})
}

func TestJWTRefusals(t *testing.T) {
	is := jwtauthtest.New(t)
	s := newJWTServer(t, is, options{})
	expired := jwtauthtest.Claims("alice")
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	otherAud := jwtauthtest.Claims("alice")
	otherAud["aud"] = "another-app"
	for name, tok := range map[string]string{
		"expired":        is.Sign(t, jwtauthtest.RSAKeyID, expired),
		"other audience": is.Sign(t, jwtauthtest.ECKeyID, otherAud),
		"garbage":        "not.a.jwt",
		"wrong token":    "admin-token2",
	} {
		f := uploadtest.File{Name: "x.bin", Size: 1 << 20}
		body := &trackingReader{r: f.Reader()}
		req := s.request(t, http.MethodPut, "/files/x.bin", body, f.Size)
		req.Header.Set("Expect", "100-continue")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, respBody := s.do(t, req)
		requireError(t, resp, respBody, http.StatusUnauthorized, "unauthorized")
		assert.True(t, strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer "), name)
		assert.False(t, body.read.Load(), "%s: a refused body is not read", name)
		s.waitServed(t)
		s.requireLogged(t, resp, "")
	}

	// A valid token whose space claim would escape its folder.
	for _, sub := range []string{"..", ".hidden", "a:b"} {
		resp, body := s.callAs(t, is, sub, http.MethodGet, "/files", "")
		requireError(t, resp, body, http.StatusForbidden, "invalid_space")
	}
	uploadtest.RequireEmptyDir(t, s.spoolDir)
}

func TestUserQuota(t *testing.T) {
	is := jwtauthtest.New(t)
	s := newJWTServer(t, is, options{userQuota: 100})
	alice := "Bearer " + is.Token(t, "alice", nil)
	put := func(name string, size int64, auth string) (*http.Response, []byte, *trackingReader) {
		f := uploadtest.File{Name: name, Size: size}
		body := &trackingReader{r: f.Reader()}
		req := s.request(t, http.MethodPut, "/files/"+name, body, size)
		req.Header.Set("Expect", "100-continue")
		req.Header.Set("Authorization", auth)
		resp, respBody := s.do(t, req)
		s.waitServed(t)
		return resp, respBody, body
	}
	resp, body, _ := put("a.bin", 60, alice)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	assert.Equal(t, "alice", s.logLine(t, resp.Header.Get("X-Request-Id"))["user"], "the log line names the user")
	resp, body, tr := put("b.bin", 41, alice)
	requireError(t, resp, body, http.StatusRequestEntityTooLarge, "quota_exceeded")
	assert.False(t, tr.read.Load(), "the quota is checked before the body is read")
	resp, body, _ = put("b.bin", 40, alice)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))

	// Another user's quota is their own; the shared token has none.
	resp, body, _ = put("c.bin", 100, "Bearer "+is.Token(t, "bob", nil))
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	resp, body, _ = put("d.bin", 1000, "Bearer admin-token")
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))

	// Uploads in parts and tus declare their size, checked at creation.
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPost, "/uploads", `{"name":"big.bin","size":1}`},
		{http.MethodPost, "/s3/multipart", `{"filename":"big.bin","type":"x","metadata":{"size":1}}`},
	} {
		req := s.request(t, c.method, c.path, strings.NewReader(c.body), int64(len(c.body)))
		req.Header.Set("Authorization", alice)
		resp, body := s.do(t, req)
		requireError(t, resp, body, http.StatusRequestEntityTooLarge, "quota_exceeded")
		s.waitServed(t)
	}
	req := s.request(t, http.MethodPost, "/tus/", nil, 0)
	req.Header.Set("Authorization", alice)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", "1")
	req.Header.Set("Upload-Metadata", "filename dC5iaW4=")
	resp, body = s.do(t, req)
	requireError(t, resp, body, http.StatusRequestEntityTooLarge, "quota_exceeded")
	s.waitServed(t)

	// Freeing space makes room again.
	req = s.request(t, http.MethodDelete, "/files/a.bin", nil, 0)
	req.Header.Set("Authorization", alice)
	resp, body = s.do(t, req)
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	s.waitServed(t)
	resp, body, _ = put("e.bin", 60, alice)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
}

// The shared token keeps working beside JWTs, and a server with JWTs and
// no token refuses a request without one.
func TestSharedTokenBesideJWTs(t *testing.T) {
	is := jwtauthtest.New(t)
	s := newJWTServer(t, is, options{})
	req := s.request(t, http.MethodGet, "/files", nil, 0)
	req.Header.Set("Authorization", "Bearer admin-token")
	resp, body := s.do(t, req)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	s.waitServed(t)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := jwtauth.New(ctx, jwtauth.Config{JWKSURL: is.URL, Issuer: jwtauthtest.IssuerName, Audience: jwtauthtest.Audience})
	require.NoError(t, err)
	jwtOnly := newServer(t, options{auth: v})
	for _, auth := range []string{"", "Bearer ", "Bearer admin-token"} {
		req := jwtOnly.request(t, http.MethodGet, "/files", nil, 0)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, body := jwtOnly.do(t, req)
		requireError(t, resp, body, http.StatusUnauthorized, "unauthorized")
		jwtOnly.waitServed(t)
	}
	// Without a space claim, every user shares the one store.
	c := jwtauthtest.Claims("carol")
	c["extra"] = jwt.NewNumericDate(time.Now())
	req = jwtOnly.request(t, http.MethodPut, "/files/shared.txt", strings.NewReader("x"), 1)
	req.Header.Set("Authorization", "Bearer "+is.Sign(t, jwtauthtest.ECKeyID, c))
	resp, body = jwtOnly.do(t, req)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	assert.Equal(t, "/files/shared.txt", resp.Header.Get("Location"))
	jwtOnly.waitServed(t)
}

// A user's listing pages through their own space, with cursors in their
// own names.
func TestUserListingPages(t *testing.T) {
	is := jwtauthtest.New(t)
	s := newJWTServer(t, is, options{})
	for _, c := range []struct{ user, name string }{{"alice", "a"}, {"bob", "b"}, {"alice", "c"}, {"alice", "d/e"}, {"bob", "f"}} {
		resp, body := s.callAs(t, is, c.user, http.MethodPut, "/files/"+c.name, "x")
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	}
	var names []string
	q := "?limit=2"
	for range 5 {
		resp, body := s.callAs(t, is, "alice", http.MethodGet, "/files"+q, "")
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var l wire.ListResponse
		require.NoError(t, json.Unmarshal(body, &l))
		for _, f := range l.Files {
			names = append(names, f.Name)
		}
		if l.NextCursor == "" {
			break
		}
		q = "?limit=2&cursor=" + l.NextCursor
	}
	assert.Equal(t, []string{"a", "c", "d/e"}, names)
}

// On a store that refuses case twins, spaces whose claims differ only in
// case collide: the second user is refused, and never reaches the first
// one's files.
func TestSpacesDifferingInCase(t *testing.T) {
	is := jwtauthtest.New(t)
	s := newJWTServer(t, is, options{})
	resp, body := s.callAs(t, is, "Alice", http.MethodPut, "/files/x.txt", "first")
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	resp, body = s.callAs(t, is, "alice", http.MethodPut, "/files/y.txt", "second")
	requireError(t, resp, body, http.StatusConflict, "exists")
	resp, body = s.callAs(t, is, "alice", http.MethodGet, "/files/x.txt", "")
	requireError(t, resp, body, http.StatusNotFound, "not_found")
	resp, body = s.callAs(t, is, "alice", http.MethodGet, "/files", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"files":[]}`, string(body))
}

// /metrics is the operator's: a JWT user is refused, the shared token
// served.
func TestMetricsNeedTheSharedToken(t *testing.T) {
	is := jwtauthtest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := jwtauth.New(ctx, jwtauth.Config{JWKSURL: is.URL, Issuer: jwtauthtest.IssuerName, Audience: jwtauthtest.Audience})
	require.NoError(t, err)
	s, _ := newRouteServer(t, api.Config{Token: "t0k", Metrics: exposition, Authenticator: v})
	req := s.request(t, http.MethodGet, "/metrics", nil, 0)
	req.Header.Set("Authorization", "Bearer "+is.Token(t, "alice", nil))
	resp, body := s.finish(t, req)
	requireError(t, resp, body, http.StatusUnauthorized, "unauthorized")
	resp, body = s.call(t, http.MethodGet, "/metrics", nil, 0)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
}

// A form URL lasts its TTL on a store that takes no parts too: it used to
// expire as it was made there, its TTL being the part URLs' own.
func TestFormURLOfAStoreWithoutParts(t *testing.T) {
	is := jwtauthtest.New(t)
	s := newJWTServer(t, is, options{wrapStore: func(st store.Store) store.Store { return withoutCaps{st} }})
	resp, body := s.callAs(t, is, "alice", http.MethodGet, "/s3/params?filename=f.txt", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var p wire.S3Params
	require.NoError(t, json.Unmarshal(body, &p))
	u, err := url.Parse(p.URL)
	require.NoError(t, err)
	exp, err := strconv.ParseInt(u.Query().Get("expires"), 10, 64)
	require.NoError(t, err)
	assert.Greater(t, exp, time.Now().Add(api.DefaultPartURLTTL/2).Unix())
}

// callAs sends a request with body, a bearer JWT of user from is, and
// waits until it is served.
func (s *server) callAs(t *testing.T, is *jwtauthtest.Issuer, user, method, path, body string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := s.request(t, method, path, r, int64(len(body)))
	req.Header.Set("Authorization", "Bearer "+is.Token(t, user, nil))
	resp, respBody := s.do(t, req)
	s.waitServed(t)
	return resp, respBody
}
