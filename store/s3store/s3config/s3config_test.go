package s3config_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/store/s3store"
	"spillway/store/s3store/s3config"
)

// The function's client comes from the environment alone, the local
// server's from the SDK's whole chain. Given only the environment Lambda
// sets, both must behave alike: the same credentials, region, endpoint and
// addressing, and the SDK's retries and checksums, which s3store relies on
// (CRC64NVME verified by S3, throttling retried), left at the same defaults.
func TestEnvClientMatchesDefaultChain(t *testing.T) {
	env := map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "token",
		"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9",
	}
	// Nothing but env may reach the chain: no profile, no instance role.
	for _, k := range []string{"AWS_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_PROFILE",
		"AWS_DEFAULT_PROFILE", "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS", "AWS_REQUEST_CHECKSUM_CALCULATION",
		"AWS_RESPONSE_CHECKSUM_VALIDATION", "AWS_DEFAULTS_MODE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_CA_BUNDLE",
		"AWS_USE_DUALSTACK_ENDPOINT", "AWS_USE_FIPS_ENDPOINT", "AWS_S3_USE_ARN_REGION", "AWS_S3_DISABLE_MULTIREGION_ACCESS_POINTS",
		"AWS_S3_DISABLE_EXPRESS_SESSION_AUTH", "AWS_SDK_UA_APP_ID"} {
		t.Setenv(k, "")
	}
	none := filepath.Join(t.TempDir(), "none")
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for k, v := range env {
		t.Setenv(k, v)
	}

	fromEnv, err := s3store.NewEnvClient(func(k string) string { return env[k] })
	require.NoError(t, err)
	fromChain, err := s3config.NewClient(t.Context(), s3store.EndpointSet(func(k string) string { return env[k] }))
	require.NoError(t, err)

	got, want := summary(t, fromEnv), summary(t, fromChain)
	assert.Equal(t, want, got)
	assert.Equal(t, "eu-west-1 http://127.0.0.1:9 path-style", fmt.Sprint(got["region"], " ", got["endpoint"], " ", got["addressing"]))
}

// summary is what of a client's options decides how it talks to S3.
func summary(t *testing.T, c *s3.Client) map[string]any {
	o := c.Options()
	creds, err := o.Credentials.Retrieve(t.Context())
	require.NoError(t, err)
	addressing := "virtual-hosted"
	if o.UsePathStyle {
		addressing = "path-style"
	}
	return map[string]any{
		"region":          o.Region,
		"endpoint":        aws.ToString(o.BaseEndpoint),
		"addressing":      addressing,
		"credentials":     [3]string{creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken},
		"retryer":         fmt.Sprintf("%T", o.Retryer),
		"max attempts":    o.Retryer.MaxAttempts(),
		"retry mode":      o.RetryMode,
		"retry max":       o.RetryMaxAttempts,
		"checksum calc":   o.RequestChecksumCalculation,
		"checksum valid":  o.ResponseChecksumValidation,
		"defaults mode":   o.DefaultsMode,
		"http client":     fmt.Sprintf("%T", o.HTTPClient),
		"use ARN region":  o.UseARNRegion,
		"dual stack":      o.EndpointOptions.UseDualStackEndpoint,
		"fips":            o.EndpointOptions.UseFIPSEndpoint,
		"express auth":    o.DisableS3ExpressSessionAuth,
		"multi-region AP": o.DisableMultiRegionAccessPoints,
		"app ID":          o.AppID,
		"api options":     len(o.APIOptions),
	}
}
