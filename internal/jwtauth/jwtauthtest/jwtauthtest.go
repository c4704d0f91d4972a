// Package jwtauthtest is an OIDC issuer for tests: a JWKS served on
// loopback with keys made for the test, and tokens signed with them.
package jwtauthtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// The issuer and audience of the tokens Token signs.
const (
	IssuerName = "https://issuer.test"
	Audience   = "spillway-test"
)

// The key IDs of the issuer's keys at start.
const (
	RSAKeyID = "rsa-1"
	ECKeyID  = "ec-1"
)

// Issuer serves a JWKS on loopback and signs tokens with its keys.
type Issuer struct {
	// URL is the JWKS URL.
	URL string

	mu        sync.Mutex
	published []jwkset.JWKMarshal
	signers   map[string]crypto.Signer
	fetches   atomic.Int64
	latency   atomic.Int64 // a fetch's delay, as from a distant issuer
}

// New starts an issuer with an RSA key (RSAKeyID) and an EC P-256 key
// (ECKeyID), both published; it stops when the test ends.
func New(t testing.TB) *Issuer {
	t.Helper()
	is := &Issuer{signers: map[string]crypto.Signer{}}
	is.AddKey(t, RSAKeyID, NewRSAKey(t), true)
	is.AddKey(t, ECKeyID, NewECKey(t), true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		is.fetches.Add(1)
		time.Sleep(time.Duration(is.latency.Load()))
		is.mu.Lock()
		body, err := json.Marshal(jwkset.JWKSMarshal{Keys: is.published})
		is.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	is.URL = srv.URL + "/.well-known/jwks.json"
	return is
}

// NewRSAKey makes an RSA key for RS256.
func NewRSAKey(t testing.TB) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return k
}

// NewECKey makes a P-256 key for ES256.
func NewECKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

// AddKey makes key a signing key under kid, and publishes its public half
// in the JWKS when publish is set.
func (is *Issuer) AddKey(t testing.TB, kid string, key crypto.Signer, publish bool) {
	t.Helper()
	is.mu.Lock()
	defer is.mu.Unlock()
	is.signers[kid] = key
	if !publish {
		return
	}
	jwk, err := jwkset.NewJWKFromKey(key.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, USE: jwkset.UseSig}})
	require.NoError(t, err)
	is.published = append(is.published, jwk.Marshal())
}

// SetLatency delays every later fetch of the JWKS by d, as the network
// between a server and a real issuer does.
func (is *Issuer) SetLatency(d time.Duration) { is.latency.Store(int64(d)) }

// Fetches is how many times the JWKS was fetched.
func (is *Issuer) Fetches() int64 { return is.fetches.Load() }

// Claims are the usual claims of a token for sub, valid for an hour from
// now; a test changes them before signing.
func Claims(sub string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": IssuerName, "aud": Audience, "sub": sub,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

// Sign signs claims with the key kid: RS256 for an RSA key, ES256 for EC.
func (is *Issuer) Sign(t testing.TB, kid string, claims jwt.Claims) string {
	t.Helper()
	is.mu.Lock()
	key := is.signers[kid]
	is.mu.Unlock()
	require.NotNil(t, key, "no key %q", kid)
	method := jwt.SigningMethod(jwt.SigningMethodRS256)
	if _, ok := key.(*ecdsa.PrivateKey); ok {
		method = jwt.SigningMethodES256
	}
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

// Token is a valid RS256 token for sub with extra claims added.
func (is *Issuer) Token(t testing.TB, sub string, extra map[string]any) string {
	t.Helper()
	c := Claims(sub)
	for k, v := range extra {
		c[k] = v
	}
	return is.Sign(t, RSAKeyID, c)
}
