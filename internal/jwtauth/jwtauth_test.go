package jwtauth_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"spillway/internal/jwtauth"
	"spillway/internal/jwtauth/jwtauthtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newVerifier(t *testing.T, is *jwtauthtest.Issuer, claim string) *jwtauth.Verifier {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := jwtauth.New(ctx, jwtauth.Config{
		JWKSURL: is.URL, Issuer: jwtauthtest.IssuerName, Audience: jwtauthtest.Audience,
		SpaceClaim: claim, RefreshInterval: time.Hour,
	})
	require.NoError(t, err)
	return v
}

func TestValidTokens(t *testing.T) {
	is := jwtauthtest.New(t)
	v := newVerifier(t, is, "sub")
	for _, kid := range []string{jwtauthtest.RSAKeyID, jwtauthtest.ECKeyID} {
		p, err := v.Verify(t.Context(), is.Sign(t, kid, jwtauthtest.Claims("alice")))
		require.NoError(t, err, kid)
		assert.Equal(t, jwtauth.Principal{User: "alice", Space: "alice/"}, p, kid)
	}
	// Within the leeway, a token just expired or not quite valid yet is
	// still taken.
	c := jwtauthtest.Claims("alice")
	c["exp"] = time.Now().Add(-5 * time.Second).Unix()
	c["nbf"] = time.Now().Add(5 * time.Second).Unix()
	_, err := v.Verify(t.Context(), is.Sign(t, jwtauthtest.ECKeyID, c))
	require.NoError(t, err)
}

func TestRefusedTokens(t *testing.T) {
	is := jwtauthtest.New(t)
	// An unpublished key under a published key's ID: a wrong signature.
	is.AddKey(t, "impostor", jwtauthtest.NewRSAKey(t), false)
	v := newVerifier(t, is, "")
	impostor := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwtauthtest.Claims("alice"))
		tok.Header["kid"] = jwtauthtest.RSAKeyID
		s, err := tok.SignedString(jwtauthtest.NewRSAKey(t))
		require.NoError(t, err)
		return s
	}
	with := func(k string, val any) string {
		c := jwtauthtest.Claims("alice")
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return is.Sign(t, jwtauthtest.RSAKeyID, c)
	}
	// alg none, and HS256 keyed with the RSA key's public half: the
	// classic confusion of a verifier that takes the token's alg.
	none := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, jwtauthtest.Claims("alice"))
		tok.Header["kid"] = jwtauthtest.RSAKeyID
		s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		require.NoError(t, err)
		return s
	}
	hs256 := func() string {
		pub := jwtauthtest.NewRSAKey(t).Public()
		der, err := x509.MarshalPKIXPublicKey(pub)
		require.NoError(t, err)
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwtauthtest.Claims("alice"))
		tok.Header["kid"] = jwtauthtest.RSAKeyID
		s, err := tok.SignedString(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		require.NoError(t, err)
		return s
	}
	for name, tok := range map[string]string{
		"wrong signature": impostor(),
		"wrong issuer":    with("iss", "https://other.test"),
		"wrong audience":  with("aud", "other-app"),
		"expired":         with("exp", time.Now().Add(-time.Hour).Unix()),
		"nbf in future":   with("nbf", time.Now().Add(time.Hour).Unix()),
		"no exp":          with("exp", nil),
		"no sub":          with("sub", nil),
		"alg none":        none(),
		"HS256":           hs256(),
		"not a JWT":       "a-shared-token",
		"empty":           "",
	} {
		_, err := v.Verify(t.Context(), tok)
		require.ErrorIs(t, err, jwtauth.ErrInvalidToken, name)
	}
}

func TestUnknownKeyIDRefreshesBounded(t *testing.T) {
	is := jwtauthtest.New(t)
	v := newVerifier(t, is, "")
	// A real issuer is a network away; the refresh must have time to
	// fetch, however soon a flood of unknown kids is refused.
	is.SetLatency(50 * time.Millisecond)
	// The first fetch is made at start; a token with a key published
	// since then makes one more.
	is.AddKey(t, "rotated", jwtauthtest.NewECKey(t), true)
	before := is.Fetches()
	require.Positive(t, before)
	_, err := v.Verify(t.Context(), is.Sign(t, "rotated", jwtauthtest.Claims("alice")))
	require.NoError(t, err, "an unknown kid refreshes the key set")
	require.Equal(t, before+1, is.Fetches())

	// A flood of unknown kids within the interval fetches nothing more,
	// and is refused without waiting for the next allowed fetch.
	for i := range 50 {
		kid := fmt.Sprintf("made-up-%d", i)
		is.AddKey(t, kid, jwtauthtest.NewECKey(t), false)
		start := time.Now()
		_, err := v.Verify(t.Context(), is.Sign(t, kid, jwtauthtest.Claims("alice")))
		require.ErrorIs(t, err, jwtauth.ErrInvalidToken)
		require.Less(t, time.Since(start), time.Second)
	}
	assert.Equal(t, before+1, is.Fetches(), "refreshes are rate-limited")

	// A key published meanwhile is found once the limit allows again: the
	// cached keys keep working in between.
	_, err = v.Verify(t.Context(), is.Token(t, "bob", nil))
	require.NoError(t, err)
}

func TestSpaceClaim(t *testing.T) {
	is := jwtauthtest.New(t)
	v := newVerifier(t, is, "tenant")
	p, err := v.Verify(t.Context(), is.Token(t, "alice", map[string]any{"tenant": "acme"}))
	require.NoError(t, err)
	assert.Equal(t, jwtauth.Principal{User: "alice", Space: "acme/"}, p)
	for _, bad := range []any{nil, "", "..", "a/b", "../bob", ".hidden", "a:b", "auth0|123", 42, []string{"x"}} {
		_, err := v.Verify(t.Context(), is.Token(t, "alice", map[string]any{"tenant": bad}))
		require.ErrorIs(t, err, jwtauth.ErrInvalidSpace, "%v", bad)
	}
}

func TestNewNeedsIssuerAndAudience(t *testing.T) {
	for _, cfg := range []jwtauth.Config{
		{JWKSURL: "http://127.0.0.1:1/jwks", Issuer: "i"},
		{JWKSURL: "http://127.0.0.1:1/jwks", Audience: "a"},
		{Issuer: "i", Audience: "a"},
	} {
		_, err := jwtauth.New(t.Context(), cfg)
		require.Error(t, err)
	}
}
