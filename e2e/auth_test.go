package e2e

import (
	"testing"

	"spillway/internal/jwtauth/jwtauthtest"
	"spillway/internal/testservers"
)

// jwtArgs are the flags of a server that takes the JWTs of is, each user
// in the folder its sub claim names, beside the shared token.
func jwtArgs(is *jwtauthtest.Issuer) []string {
	return []string{"--token", token, "--jwt-jwks-url", is.URL, "--jwt-issuer", jwtauthtest.IssuerName,
		"--jwt-audience", jwtauthtest.Audience, "--user-prefix-claim", "sub"}
}

func isolationTarget(t *testing.T, is *jwtauthtest.Issuer, url string) jwtauthtest.Target {
	return jwtauthtest.Target{URL: url, A: is.Token(t, "alice", nil), B: is.Token(t, "bob", nil),
		SpaceA: "alice/", SpaceB: "bob/", Admin: token}
}

func TestUserIsolationLocalServer(t *testing.T) {
	is := jwtauthtest.New(t)
	dir := t.TempDir()
	srv := startServer(t, testservers.CleanEnv(), append(jwtArgs(is), "--directory", dir, "--spool-dir", t.TempDir(),
		"--upload-secret", uploadSecret)...)
	jwtauthtest.RequireIsolation(t, isolationTarget(t, is, srv.URL))
}

func TestUserIsolationFunctionURL(t *testing.T) {
	is := jwtauthtest.New(t)
	gw := testservers.StartS3(t)
	env := append(testservers.CleanEnv(), gw.Env()...)
	srv := startServer(t, env, append(jwtArgs(is), "--function", bootstrapBin(t), "--rie", testservers.Tool(t, testservers.RIE),
		"--bucket", gw.Bucket, "--spool-dir", t.TempDir())...)
	jwtauthtest.RequireIsolation(t, isolationTarget(t, is, srv.URL))
}
