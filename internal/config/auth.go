package config

import (
	"context"

	"spillway/internal/jwtauth"
)

// Verifier returns the JWT verifier c configures, or nil when c sets no
// JWKS URL. It refreshes its keys in the background until ctx is done.
func (c Config) Verifier(ctx context.Context) (*jwtauth.Verifier, error) {
	if c.JWKSURL == "" {
		return nil, nil
	}
	return jwtauth.New(ctx, jwtauth.Config{
		JWKSURL: c.JWKSURL, Issuer: c.JWTIssuer, Audience: c.JWTAudience, SpaceClaim: c.UserPrefixClaim,
	})
}
