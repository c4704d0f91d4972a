package main

import (
	"debug/buildinfo"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLinksNoPrometheus reads the module list of the built function, what
// `go version -m bootstrap` prints. The function reports its metrics as EMF
// lines; the Prometheus client, and protobuf under it, would only make the
// binary larger and run their package init at every cold start.
func TestLinksNoPrometheus(t *testing.T) {
	requireLinksNone(t, "github.com/prometheus/", "google.golang.org/protobuf")
}

// TestLinksNoAWSConfigChain: on Lambda the credentials and region are in
// the environment, so the function builds its S3 client from it alone. The
// SDK's config module, with the SSO, SSO-OIDC, STS and sign-in clients and
// the instance metadata client it links for profiles and roles, would take
// the binary over its size budget for nothing.
func TestLinksNoAWSConfigChain(t *testing.T) {
	requireLinksNone(t, "github.com/aws/aws-sdk-go-v2/config", "github.com/aws/aws-sdk-go-v2/feature/ec2/imds",
		"github.com/aws/aws-sdk-go-v2/service/sso", "github.com/aws/aws-sdk-go-v2/service/sts",
		"github.com/aws/aws-sdk-go-v2/service/signin")
}

// requireLinksNone fails t if the built function links a module whose path
// starts with one of banned.
func requireLinksNone(t *testing.T, banned ...string) {
	t.Helper()
	info, err := buildinfo.ReadFile(buildBootstrap(t))
	require.NoError(t, err)
	require.NotEmpty(t, info.Deps, "the binary carries no module list")
	for _, dep := range info.Deps {
		for _, b := range banned {
			assert.False(t, strings.HasPrefix(dep.Path, b), "the function links %s %s", dep.Path, dep.Version)
		}
	}
}
