// Package s3config builds S3 clients from the AWS SDK's standard
// configuration chain: environment, shared config and credentials files
// with their profiles, SSO, web identity, container and instance roles. It
// is for the programs run by people with their own AWS set-up (the local
// server and its Function URL emulator); the Lambda function, which gets
// everything in its environment, uses s3store.NewEnvClient and so does not
// link the chain.
package s3config

import (
	"context"
	"fmt"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"spillway/store/s3store"
)

// NewClient returns an S3 client from the SDK's standard configuration
// chain, which also honours AWS_ENDPOINT_URL_S3. pathStyle should be set
// when an endpoint is, since local and S3-compatible servers want
// path-style addressing.
func NewClient(ctx context.Context, pathStyle bool) (*s3.Client, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("s3config: aws config: %w", err)
	}
	if cfg.Region == "" {
		// A local S3 server rarely cares, but SigV4 needs some region to
		// sign with.
		cfg.Region = s3store.DefaultRegion
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = pathStyle }), nil
}
