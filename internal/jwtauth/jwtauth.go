// Package jwtauth verifies the bearer JWTs of an OIDC issuer (Cognito user
// pools, Auth0, Keycloak) against the issuer's JWKS: RS256 or ES256
// signatures, issuer, audience, expiry and not-before.
//
// The verification is golang-jwt/jwt/v5's and the key set
// MicahParks/keyfunc/v3's: it caches the JWKS, refreshes it in the
// background, and fetches it again for a key ID it does not know, under a
// rate limit so that a flood of tokens with made-up key IDs cannot hammer
// the issuer.
package jwtauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"spillway/store"
)

// Defaults of Config's optional fields.
const (
	// DefaultLeeway absorbs the clock skew between the issuer and this
	// server on exp and nbf.
	DefaultLeeway = 30 * time.Second
	// DefaultRefreshInterval spaces the fetches of the JWKS made for an
	// unknown key ID: an issuer that rotates its keys publishes the new one
	// before it signs with it, so one fetch per interval finds it.
	DefaultRefreshInterval = time.Minute
	// DefaultFetchTimeout bounds one fetch of the JWKS.
	DefaultFetchTimeout = 10 * time.Second
)

// Algorithms are the signature algorithms accepted. Listing them refuses
// "none" and the HMAC algorithms, whose key would be the public key.
var Algorithms = []string{"RS256", "ES256"}

// Errors of Verify. ErrInvalidToken wraps the library's reason.
var (
	ErrInvalidToken = errors.New("invalid bearer token")
	ErrInvalidSpace = errors.New("the token's space claim is not a valid folder name")
)

// Config configures a Verifier.
type Config struct {
	// JWKSURL is where the issuer publishes its keys.
	JWKSURL string
	// Issuer and Audience are what the iss and aud claims must hold.
	Issuer, Audience string
	// SpaceClaim, when set, names the claim whose value is the user's
	// folder: every name the user sends is under "<value>/".
	SpaceClaim string
	// Client fetches the JWKS; nil: a client with DefaultFetchTimeout.
	Client *http.Client
	// Leeway: zero means DefaultLeeway.
	Leeway time.Duration
	// RefreshInterval is the least time between two fetches made for an
	// unknown key ID. Zero means DefaultRefreshInterval.
	RefreshInterval time.Duration
}

// Principal is who a verified token speaks for.
type Principal struct {
	// User is the token's subject; empty for the shared token.
	User string
	// Space is the folder the user's names live under, with its trailing
	// slash ("alice/"), or empty for the whole store.
	Space string
}

// Verifier verifies tokens. It is safe for concurrent use.
type Verifier struct {
	keys   keyfunc.Keyfunc
	parser *jwt.Parser
	claim  string
}

// New returns a Verifier. It fetches the JWKS once, without failing when
// the issuer is down (a token is refused until a fetch succeeds), and
// refreshes it in the background until ctx is done.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if cfg.JWKSURL == "" || cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("jwtauth: a JWKS URL, an issuer and an audience are all required")
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Timeout: DefaultFetchTimeout}
	}
	every := cfg.RefreshInterval
	if every <= 0 {
		every = DefaultRefreshInterval
	}
	leeway := cfg.Leeway
	if leeway <= 0 {
		leeway = DefaultLeeway
	}
	keys, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
		Client: client,
		// jwkset bounds both the wait for the limiter and the refresh's
		// fetch by this one deadline. It must let a fetch finish; a token
		// whose key ID is unknown while the limit holds is still refused
		// at once, since the limiter fails a wait that would pass the
		// deadline without waiting.
		RateLimitWaitMax:  fetchTimeout(client),
		RefreshUnknownKID: rate.NewLimiter(rate.Every(every), 1),
	})
	if err != nil {
		return nil, fmt.Errorf("jwtauth: JWKS %s: %w", cfg.JWKSURL, err)
	}
	return &Verifier{
		keys: keys,
		parser: jwt.NewParser(
			jwt.WithValidMethods(Algorithms),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithLeeway(leeway),
			jwt.WithExpirationRequired(),
		),
		claim: cfg.SpaceClaim,
	}, nil
}

// fetchTimeout is how long one fetch of the JWKS may take with client.
func fetchTimeout(client *http.Client) time.Duration {
	if client.Timeout > 0 {
		return client.Timeout
	}
	return DefaultFetchTimeout
}

// Verify checks a token and returns its principal. A token that fails any
// check wraps ErrInvalidToken; a valid one whose space claim would break
// the name rules wraps ErrInvalidSpace.
func (v *Verifier) Verify(ctx context.Context, token string) (Principal, error) {
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(token, claims, v.keys.KeyfuncCtx(ctx)); err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	sub, err := claims.GetSubject()
	if err != nil || sub == "" {
		return Principal{}, fmt.Errorf("%w: no sub claim", ErrInvalidToken)
	}
	p := Principal{User: sub}
	if v.claim == "" {
		return p, nil
	}
	space, err := Space(claims[v.claim])
	if err != nil {
		return Principal{}, fmt.Errorf("claim %s: %w", v.claim, err)
	}
	p.Space = space
	return p, nil
}

// Space returns the folder of a space claim's value, "<value>/": the value
// must be a string that is a valid name of one segment, so that it cannot
// reach into another user's folder or out of the store.
func Space(claim any) (string, error) {
	s, ok := claim.(string)
	if !ok {
		return "", fmt.Errorf("%w: a %T, not a string", ErrInvalidSpace, claim)
	}
	if strings.Contains(s, "/") {
		return "", fmt.Errorf("%w: %q has a slash", ErrInvalidSpace, s)
	}
	if err := store.ValidateName(s); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidSpace, err)
	}
	return s + "/", nil
}
