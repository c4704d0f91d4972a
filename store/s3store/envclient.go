package s3store

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// ErrNoCredentials: the environment holds no AWS access key.
var ErrNoCredentials = errors.New("s3store: no AWS credentials in the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")

// NewEnvClient returns an S3 client configured from the environment alone,
// as Lambda gives it to a function: the execution role's credentials in
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, the
// region in AWS_REGION. It reads the variables the SDK's standard chain
// reads for these (AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, which turn on
// path-style addressing as local and S3-compatible servers want, and
// AWS_CA_BUNDLE) but no shared files, SSO or instance metadata: the SDK's
// config module that does links several service clients of its own, which
// the function binary is better without (see store/s3store/s3config for
// that chain). Without an access key it fails rather than leave the first
// request to find out.
func NewEnvClient(getenv func(string) string) (*s3.Client, error) {
	first := func(names ...string) string {
		for _, n := range names {
			if v := getenv(n); v != "" {
				return v
			}
		}
		return ""
	}
	id, secret := first("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY"), first("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY")
	if id == "" || secret == "" {
		return nil, ErrNoCredentials
	}
	cfg := aws.Config{
		Region:      first("AWS_REGION", "AWS_DEFAULT_REGION"),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, getenv("AWS_SESSION_TOKEN")),
		// What the config module fills in when no variable or profile
		// says otherwise; the client's zero values differ.
		DefaultsMode:               aws.DefaultsModeLegacy,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenSupported,
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	endpoint := ""
	if !strings.EqualFold(getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"), "true") {
		endpoint = first("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	}
	if endpoint != "" {
		cfg.BaseEndpoint = aws.String(endpoint)
	}
	if path := getenv("AWS_CA_BUNDLE"); path != "" {
		client, err := caBundleClient(path)
		if err != nil {
			return nil, err
		}
		cfg.HTTPClient = client
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = endpoint != "" }), nil
}

// caBundleClient is the SDK's default HTTP client trusting the PEM bundle
// at path instead of the system's roots, as the SDK's config module builds
// it for AWS_CA_BUNDLE.
func caBundleClient(path string) (*awshttp.BuildableClient, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("s3store: AWS_CA_BUNDLE: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("s3store: AWS_CA_BUNDLE %s: no PEM certificates", path)
	}
	return awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{}
		}
		tr.TLSClientConfig.RootCAs = roots
	}), nil
}
