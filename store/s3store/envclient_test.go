package s3store

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewEnvClient(t *testing.T) {
	keys := map[string]string{"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}
	with := func(kv ...string) func(string) string {
		env := map[string]string{}
		for k, v := range keys {
			env[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return func(k string) string { return env[k] }
	}
	for _, c := range []struct {
		name             string
		getenv           func(string) string
		region, endpoint string
	}{
		{"Lambda's", with("AWS_REGION", "eu-west-1", "AWS_DEFAULT_REGION", "us-west-2"), "eu-west-1", ""},
		{"default region variable", with("AWS_DEFAULT_REGION", "us-west-2"), "us-west-2", ""},
		{"no region", with(), DefaultRegion, ""},
		{"S3's endpoint first", with("AWS_ENDPOINT_URL_S3", "http://s3.test", "AWS_ENDPOINT_URL", "http://all.test"), DefaultRegion, "http://s3.test"},
		{"every service's endpoint", with("AWS_ENDPOINT_URL", "http://all.test"), DefaultRegion, "http://all.test"},
		{"endpoints ignored", with("AWS_ENDPOINT_URL_S3", "http://s3.test", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"), DefaultRegion, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			client, err := NewEnvClient(c.getenv)
			require.NoError(t, err)
			o := client.Options()
			assert.Equal(t, c.region, o.Region)
			assert.Equal(t, c.endpoint, aws.ToString(o.BaseEndpoint))
			assert.Equal(t, c.endpoint != "", o.UsePathStyle, "path-style exactly when an endpoint is set")
		})
	}

	t.Run("session token", func(t *testing.T) {
		client, err := NewEnvClient(with("AWS_SESSION_TOKEN", "tok"))
		require.NoError(t, err)
		creds, err := client.Options().Credentials.Retrieve(t.Context())
		require.NoError(t, err)
		assert.Equal(t, [3]string{"k", "s", "tok"}, [3]string{creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken})
	})

	t.Run("missing credentials", func(t *testing.T) {
		for _, getenv := range []func(string) string{
			func(string) string { return "" },
			with("AWS_SECRET_ACCESS_KEY", ""),
			with("AWS_ACCESS_KEY_ID", ""),
		} {
			_, err := NewEnvClient(getenv)
			require.ErrorIs(t, err, ErrNoCredentials)
		}
	})

	t.Run("bad CA bundle", func(t *testing.T) {
		_, err := NewEnvClient(with("AWS_CA_BUNDLE", filepath.Join(t.TempDir(), "missing.pem")))
		require.ErrorIs(t, err, os.ErrNotExist)
		notPEM := filepath.Join(t.TempDir(), "ca.pem")
		require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
		_, err = NewEnvClient(with("AWS_CA_BUNDLE", notPEM))
		require.ErrorContains(t, err, "no PEM certificates")
	})
}
