package uploadtest

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// MaxEventPayload is about the most raw bytes that fit in a 6 MB Function
// URL request once base64-encoded, with room for the rest of the event.
const MaxEventPayload = 4_700_000

// Dialect is the flavour of a Lambda HTTP event.
type Dialect string

const (
	FunctionURL Dialect = "function-url" // lower-case headers, $default, no pathParameters, the path as sent
	StartAPI    Dialect = "start-api"    // Title-Case headers, ANY /{proxy+}, pathParameters, the path decoded
)

// Event builds the JSON event that a client's request becomes in the
// dialect, base64-encoding the body when b64 is set. rawPath is the path as
// the client sends it, percent-encoded; a StartAPI event carries it decoded,
// as the SAM CLI takes it from Flask (an invalid escape stays as it is).
func Event(t testing.TB, d Dialect, method, rawPath string, headers map[string]string, body []byte, b64 bool) []byte {
	t.Helper()
	if d == StartAPI {
		if p, err := url.PathUnescape(rawPath); err == nil {
			rawPath = p
		}
	}
	hdrs := map[string]string{}
	for k, v := range headers {
		if d == FunctionURL {
			k = strings.ToLower(k)
		} else {
			k = http.CanonicalHeaderKey(k)
		}
		hdrs[k] = v
	}
	ev := map[string]any{
		"version":         "2.0",
		"rawPath":         rawPath,
		"rawQueryString":  "",
		"headers":         hdrs,
		"isBase64Encoded": b64,
		"requestContext": map[string]any{
			"accountId": "123456789012",
			"requestId": "req-1",
			"http": map[string]any{
				"method": method, "path": rawPath, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test",
			},
		},
	}
	ctx := ev["requestContext"].(map[string]any)
	if d == FunctionURL {
		ev["routeKey"] = "$default"
		ctx["domainName"] = "abc123.lambda-url.us-east-1.on.aws"
		ctx["apiId"] = "abc123"
	} else {
		ev["routeKey"] = "ANY /{proxy+}"
		ev["pathParameters"] = map[string]string{"proxy": strings.TrimPrefix(rawPath, "/")}
		ctx["domainName"] = "localhost"
		ctx["stage"] = "$default"
		hdrs["Host"] = "localhost:3000"
	}
	if b64 {
		ev["body"] = base64.StdEncoding.EncodeToString(body)
	} else {
		ev["body"] = string(body)
	}
	out, err := json.Marshal(ev)
	require.NoError(t, err)
	return out
}
