package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Signer signs a request to the server's own routes. payloadHash is the
// lower-case hex SHA-256 of the request's body (of nothing for a request
// without one); the client has already set it as X-Amz-Content-Sha256.
type Signer interface {
	Sign(ctx context.Context, req *http.Request, payloadHash string) error
}

// SigV4 signs requests with AWS Signature Version 4, as a Lambda Function
// URL with auth type AWS_IAM expects.
type SigV4 struct {
	Credentials aws.CredentialsProvider
	Region      string
	Service     string           // "": "lambda"
	Now         func() time.Time // nil: time.Now
	signer      *v4.Signer       // caches derived keys; nil in a struct literal
}

// NewSigV4 returns a signer for Function URLs in region.
func NewSigV4(creds aws.CredentialsProvider, region string) *SigV4 {
	return &SigV4{Credentials: creds, Region: region, signer: v4.NewSigner()}
}

// Sign implements Signer.
func (s *SigV4) Sign(ctx context.Context, req *http.Request, payloadHash string) error {
	if s.Credentials == nil {
		return errors.New("sigv4: no credentials")
	}
	if s.Region == "" {
		return errors.New("sigv4: no region")
	}
	creds, err := s.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("sigv4: credentials: %w", err)
	}
	service := s.Service
	if service == "" {
		service = "lambda"
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	signer := s.signer
	if signer == nil {
		signer = v4.NewSigner()
	}
	return signer.SignHTTP(ctx, creds, req, payloadHash, service, s.Region, now())
}

// RegionFromURL returns the region of a Lambda Function URL, whose host is
// "<id>.lambda-url.<region>.on.aws", or "" for any other URL.
func RegionFromURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	host := strings.ToLower(u.Hostname())
	rest, ok := strings.CutSuffix(host, ".on.aws")
	if !ok {
		return ""
	}
	_, region, ok := strings.Cut(rest, ".lambda-url.")
	if !ok || region == "" || strings.Contains(region, ".") {
		return ""
	}
	return region
}
