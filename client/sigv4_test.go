package client_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/client"
)

func hmacSHA256(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// wantAuthorization computes a SigV4 Authorization header by the book
// (docs.aws.amazon.com, "Create a signed AWS API request"), independently of
// the SDK, for a request whose signed headers are exactly these.
func wantAuthorization(method, canonicalURI string, headers [][2]string, payloadHash, secret, region string, at time.Time) string {
	var names []string
	var canon strings.Builder
	for _, h := range headers {
		names = append(names, h[0])
		canon.WriteString(h[0] + ":" + h[1] + "\n")
	}
	signed := strings.Join(names, ";")
	creq := strings.Join([]string{method, canonicalURI, "", canon.String(), signed, payloadHash}, "\n")
	day := at.Format("20060102")
	scope := day + "/" + region + "/lambda/aws4_request"
	sum := sha256.Sum256([]byte(creq))
	sts := "AWS4-HMAC-SHA256\n" + at.Format("20060102T150405Z") + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	key := hmacSHA256([]byte("AWS4"+secret), day)
	key = hmacSHA256(key, region)
	key = hmacSHA256(key, "lambda")
	key = hmacSHA256(key, "aws4_request")
	return "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/" + scope + ", SignedHeaders=" + signed +
		", Signature=" + hex.EncodeToString(hmacSHA256(key, sts))
}

func TestSigV4(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const host = "abcdefg.lambda-url.eu-west-1.on.aws"
	signer := client.NewSigV4(credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", "TOKEN"), "eu-west-1")
	signer.Now = func() time.Time { return at }

	for _, tc := range []struct {
		method, url, canonicalURI, body, contentType string
	}{
		{http.MethodPost, "https://" + host + "/uploads", "/uploads", `{"name":"a","size":5}`, "application/json"},
		// Services other than S3 sign the path escaped twice.
		{http.MethodPut, "https://" + host + "/files/dir/a%20b.txt", "/files/dir/a%2520b.txt", "hello", "application/octet-stream"},
		{http.MethodGet, "https://" + host + "/uploads/u1", "/uploads/u1", "", ""},
	} {
		sign := func() *http.Request {
			req, err := http.NewRequestWithContext(t.Context(), tc.method, tc.url, strings.NewReader(tc.body))
			require.NoError(t, err)
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			req.Header.Set("X-Amz-Content-Sha256", hexSHA([]byte(tc.body)))
			require.NoError(t, signer.Sign(t.Context(), req, hexSHA([]byte(tc.body))))
			return req
		}
		req := sign()
		var headers [][2]string
		if tc.body != "" {
			headers = append(headers, [2]string{"content-length", "5"})
			if tc.method == http.MethodPost {
				headers[0][1] = "21"
			}
			headers = append(headers, [2]string{"content-type", tc.contentType})
		}
		headers = append(headers, [][2]string{{"host", host}, {"x-amz-content-sha256", hexSHA([]byte(tc.body))},
			{"x-amz-date", "20260102T030405Z"}, {"x-amz-security-token", "TOKEN"}}...)
		want := wantAuthorization(tc.method, tc.canonicalURI, headers, hexSHA([]byte(tc.body)), "wJalrXUtnFEMI/K7MDENG", "eu-west-1", at)
		assert.Equal(t, want, req.Header.Get("Authorization"), tc.url)
		assert.Equal(t, "20260102T030405Z", req.Header.Get("X-Amz-Date"))
		assert.Equal(t, "TOKEN", req.Header.Get("X-Amz-Security-Token"))
		assert.Equal(t, req.Header.Get("Authorization"), sign().Header.Get("Authorization"), "stable for a fixed time and credentials")
	}
}

func TestSigV4NeedsRegionAndCredentials(t *testing.T) {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://example.com/", nil)
	require.NoError(t, err)
	assert.Error(t, client.NewSigV4(nil, "eu-west-1").Sign(t.Context(), req, hexSHA(nil)))
	assert.Error(t, client.NewSigV4(credentials.NewStaticCredentialsProvider("a", "b", ""), "").Sign(t.Context(), req, hexSHA(nil)))
	assert.Empty(t, req.Header.Get("Authorization"))
}

func TestRegionFromURL(t *testing.T) {
	for u, want := range map[string]string{
		"https://abcdefg.lambda-url.us-east-1.on.aws/":      "us-east-1",
		"https://ABCDEFG.LAMBDA-URL.EU-WEST-2.ON.AWS":       "eu-west-2",
		"https://abcdefg.lambda-url.ap-south-1.on.aws:443/": "ap-south-1",
		"http://127.0.0.1:8080":                             "",
		"https://example.com/x.lambda-url.us-east-1.on.aws": "",
		"https://lambda-url.us-east-1.on.aws.example.com":   "",
		"https://a.lambda-url.on.aws":                       "",
		"::":                                                "",
	} {
		assert.Equal(t, want, client.RegionFromURL(u), u)
	}
}
