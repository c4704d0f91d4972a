package lambdahttp_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/apierr"
	"spillway/lambdahttp"
	"spillway/wire"
)

// anyResponse decodes the response of every dialect.
type anyResponse struct {
	StatusCode        int                 `json:"statusCode"`
	StatusDescription string              `json:"statusDescription"`
	Headers           map[string]string   `json:"headers"`
	MultiValueHeaders map[string][]string `json:"multiValueHeaders"`
	Cookies           []string            `json:"cookies"`
	Body              string              `json:"body"`
	IsBase64Encoded   bool                `json:"isBase64Encoded"`
}

// header returns a header's value, from whichever field carries it.
func (r anyResponse) header(k string) string {
	if v, ok := r.Headers[k]; ok {
		return v
	}
	return strings.Join(r.MultiValueHeaders[k], ",")
}

func (r anyResponse) body(t testing.TB) []byte {
	t.Helper()
	if !r.IsBase64Encoded {
		return []byte(r.Body)
	}
	b, err := base64.StdEncoding.DecodeString(r.Body)
	require.NoError(t, err)
	return b
}

// producer builds the event a request becomes, as one producer builds it.
type producer struct {
	name  string
	event func(method, escapedPath, rawQuery string, body []byte, b64 bool) map[string]any
}

func unescape(p string) string {
	d, err := url.PathUnescape(p)
	if err != nil {
		panic(err)
	}
	return d
}

func bodyField(body []byte, b64 bool) any {
	if b64 {
		return base64.StdEncoding.EncodeToString(body)
	}
	if len(body) == 0 {
		return nil
	}
	return string(body)
}

// producers: a Function URL sends the path as the client sent it; an HTTP
// API and sam local start-api send rawPath (and REST's path) decoded, and
// REST's query parameters decoded; an ALB sends path and query as sent.
var producers = []producer{
	{"function-url", func(method, p, q string, body []byte, b64 bool) map[string]any {
		return map[string]any{
			"version": "2.0", "routeKey": "$default", "rawPath": p, "rawQueryString": q,
			"headers": map[string]string{"content-type": "application/octet-stream", "host": "abc.lambda-url.eu-west-1.on.aws"},
			"requestContext": map[string]any{
				"domainName": "abc.lambda-url.eu-west-1.on.aws", "routeKey": "$default", "stage": "$default",
				"http": map[string]any{"method": method, "path": p, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1"},
			},
			"body": bodyField(body, b64), "isBase64Encoded": b64,
		}
	}},
	{"http-api", func(method, p, q string, body []byte, b64 bool) map[string]any {
		return map[string]any{
			"version": "2.0", "routeKey": "$default", "rawPath": unescape(p), "rawQueryString": q,
			"headers": map[string]string{"content-type": "application/octet-stream", "host": "a1b2.execute-api.eu-west-1.amazonaws.com"},
			"requestContext": map[string]any{
				"domainName": "a1b2.execute-api.eu-west-1.amazonaws.com", "routeKey": "$default", "stage": "$default",
				"http": map[string]any{"method": method, "path": unescape(p), "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1"},
			},
			"body": bodyField(body, b64), "isBase64Encoded": b64,
		}
	}},
	{"sam-local-v2", func(method, p, q string, body []byte, b64 bool) map[string]any {
		return map[string]any{
			"version": "2.0", "routeKey": "ANY /{proxy+}", "rawPath": unescape(p), "rawQueryString": q, "cookies": []string{},
			"headers":        map[string]string{"Content-Type": "application/octet-stream", "Host": "localhost:3000", "X-Forwarded-Proto": "http", "X-Forwarded-Port": "3000"},
			"pathParameters": map[string]string{"proxy": strings.TrimPrefix(unescape(p), "/")},
			"requestContext": map[string]any{
				"accountId": "123456789012", "apiId": "1234567890", "domainName": "localhost", "routeKey": "ANY /{proxy+}", "stage": "$default",
				"http": map[string]any{"method": method, "path": unescape(p), "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
			},
			"body": bodyField(body, b64), "isBase64Encoded": b64,
		}
	}},
	{"sam-local-v1", func(method, p, q string, body []byte, b64 bool) map[string]any {
		hdrs := map[string]string{"Content-Type": "application/octet-stream", "Host": "localhost:3000", "X-Forwarded-Proto": "http", "X-Forwarded-Port": "3000"}
		mv := map[string][]string{}
		for k, v := range hdrs {
			mv[k] = []string{v}
		}
		var qs map[string]string
		var mvqs map[string][]string
		if q != "" {
			vals, err := url.ParseQuery(q)
			if err != nil {
				panic(err)
			}
			qs, mvqs = map[string]string{}, map[string][]string(vals)
			for k, vs := range vals {
				qs[k] = vs[len(vs)-1]
			}
		}
		return map[string]any{
			"version": "1.0", "httpMethod": method, "resource": "/{proxy+}", "path": unescape(p),
			"headers": hdrs, "multiValueHeaders": mv,
			"queryStringParameters": qs, "multiValueQueryStringParameters": mvqs,
			"pathParameters": map[string]string{"proxy": strings.TrimPrefix(unescape(p), "/")},
			"requestContext": map[string]any{
				"resourcePath": "/{proxy+}", "httpMethod": method, "stage": "Prod", "path": "/{proxy+}", "protocol": "HTTP/1.1",
				"domainName": "localhost:3000", "identity": map[string]any{"sourceIp": "127.0.0.1", "user": nil},
			},
			"body": bodyField(body, b64), "isBase64Encoded": b64,
		}
	}},
	{"alb", func(method, p, q string, body []byte, b64 bool) map[string]any {
		mvqs := map[string][]string{}
		for kv := range strings.SplitSeq(q, "&") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				mvqs[k] = append(mvqs[k], v)
			}
		}
		return map[string]any{
			"requestContext": map[string]any{"elb": map[string]string{"targetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/t/1"}},
			"httpMethod":     method, "path": p,
			"multiValueHeaders":               map[string][]string{"content-type": {"application/octet-stream"}, "host": {"lb-1.eu-west-1.elb.amazonaws.com"}},
			"multiValueQueryStringParameters": mvqs,
			"body":                            bodyField(body, b64), "isBase64Encoded": b64,
		}
	}},
	{"alb-single-value", func(method, p, q string, body []byte, b64 bool) map[string]any {
		qs := map[string]string{}
		for kv := range strings.SplitSeq(q, "&") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				qs[k] = v
			}
		}
		return map[string]any{
			"requestContext": map[string]any{"elb": map[string]string{"targetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/t/1"}},
			"httpMethod":     method, "path": p,
			"headers":               map[string]string{"content-type": "application/octet-stream", "host": "lb-1.eu-west-1.elb.amazonaws.com"},
			"queryStringParameters": qs,
			"body":                  bodyField(body, b64), "isBase64Encoded": b64,
		}
	}},
}

func (e *env) invokeAny(t testing.TB, ev map[string]any) anyResponse {
	t.Helper()
	payload, err := json.Marshal(ev)
	require.NoError(t, err)
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "aws-req-7"})
	out, err := e.adapter.Invoke(ctx, payload)
	require.NoError(t, err)
	var resp anyResponse
	require.NoError(t, json.Unmarshal(out, &resp), "%s", out)
	return resp
}

// escapeName escapes a name segment by segment, as a client does.
func escapeName(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// trickyNames are valid names that an adapter decoding twice, or not at
// all, would store under another name or refuse.
var trickyNames = []string{
	"report#v=2.pdf",
	"a#b.txt",
	"100%.txt",
	"%41.txt",
	"%zz.txt",
	"x%2Fy.txt",
	"a b.txt",
	"c++ notes.txt",
	"a+b=c&d;e,f@g$h.txt",
	"'quoted' (1) [2] {3} !~^.txt",
	"ünïcødé.txt",
	"日本語/データ.bin",
	"😀 emoji.txt",
	"dir one/sub%20dir/q#%+.txt",
}

// TestNamesRoundTrip stores every tricky name through every dialect, built
// as its producer builds it, with the real handler and a directory store,
// then reads it back through the same dialect.
func TestNamesRoundTrip(t *testing.T) {
	for _, p := range producers {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv(t)
			for i, name := range trickyNames {
				content := []byte("content of " + name)
				path := "/files/" + escapeName(name)
				resp := e.invokeAny(t, p.event(http.MethodPut, path, "", content, i%2 == 0))
				require.Equal(t, http.StatusCreated, resp.StatusCode, "%s: %s", name, resp.Body)
				assert.Equal(t, path, resp.header("location"), name)
				var got wire.UploadResponse
				require.NoError(t, json.Unmarshal(resp.body(t), &got))
				require.Len(t, got.Files, 1)
				assert.Equal(t, name, got.Files[0].Name)
				stored, err := os.ReadFile(filepath.Join(e.dir, filepath.FromSlash(name)))
				require.NoError(t, err, name)
				assert.Equal(t, content, stored, name)

				resp = e.invokeAny(t, p.event(http.MethodGet, path, "", nil, false))
				require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", name, resp.Body)
				assert.Equal(t, content, resp.body(t), name)
			}
			// Nothing else was stored, under any other name.
			var names []string
			require.NoError(t, filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					rel, _ := filepath.Rel(e.dir, p)
					names = append(names, filepath.ToSlash(rel))
				}
				return err
			}))
			assert.ElementsMatch(t, trickyNames, names)
			e.requireSpoolEmpty(t)
		})
	}
}

func (e *env) requireSpoolEmpty(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir(e.spoolDir)
	require.NoError(t, err)
	assert.Empty(t, entries)
}

// TestQueryThroughDialects: the handler sees the query the client sent,
// whichever dialect carried it.
func TestQueryThroughDialects(t *testing.T) {
	var seen url.Values
	a := lambdahttp.New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.URL.Query()
	}))
	for _, p := range producers {
		seen = nil
		payload, err := json.Marshal(p.event(http.MethodGet, "/files", "from=a%2Fb+c&x=%26&x=2", nil, false))
		require.NoError(t, err)
		_, err = a.Invoke(context.Background(), payload)
		require.NoError(t, err)
		want := url.Values{"from": {"a/b c"}, "x": {"&", "2"}}
		if p.name == "alb-single-value" {
			want["x"] = []string{"2"} // one value per name is all it carries
		}
		assert.Equal(t, want, seen, p.name)
	}
}

// TestResponseShapes: each dialect answers in the shape its producer reads.
func TestResponseShapes(t *testing.T) {
	a := lambdahttp.New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "a", Value: "1"})
		http.SetCookie(w, &http.Cookie{Name: "b", Value: "2"})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"ok":true}`)
	}))
	invoke := func(ev map[string]any) map[string]any {
		payload, err := json.Marshal(ev)
		require.NoError(t, err)
		out, err := a.Invoke(context.Background(), payload)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(out, &m))
		return m
	}
	byName := map[string]producer{}
	for _, p := range producers {
		byName[p.name] = p
	}
	for _, name := range []string{"function-url", "http-api", "sam-local-v2"} {
		m := invoke(byName[name].event(http.MethodGet, "/x", "", nil, false))
		assert.EqualValues(t, 201, m["statusCode"], name)
		assert.Equal(t, map[string]any{"content-type": "application/json"}, m["headers"], name)
		assert.Equal(t, []any{"a=1", "b=2"}, m["cookies"], name)
		assert.Equal(t, `{"ok":true}`, m["body"], name)
		assert.Equal(t, false, m["isBase64Encoded"], name)
		assert.NotContains(t, m, "statusDescription", name)
	}
	m := invoke(byName["sam-local-v1"].event(http.MethodGet, "/x", "", nil, false))
	assert.EqualValues(t, 201, m["statusCode"])
	assert.Equal(t, map[string]any{"content-type": []any{"application/json"}, "set-cookie": []any{"a=1", "b=2"}}, m["multiValueHeaders"])
	assert.NotContains(t, m, "cookies")
	assert.Equal(t, `{"ok":true}`, m["body"])

	m = invoke(byName["alb"].event(http.MethodGet, "/x", "", nil, false))
	assert.Equal(t, "201 Created", m["statusDescription"])
	assert.Equal(t, map[string]any{"content-type": []any{"application/json"}, "set-cookie": []any{"a=1", "b=2"}}, m["multiValueHeaders"])
	assert.NotContains(t, m, "headers")

	m = invoke(byName["alb-single-value"].event(http.MethodGet, "/x", "", nil, false))
	assert.Equal(t, "201 Created", m["statusDescription"])
	assert.Equal(t, "application/json", m["headers"].(map[string]any)["content-type"])
	assert.NotContains(t, m, "multiValueHeaders")
}

// TestFixtures decodes every sample event in testdata, AWS's captures and
// the SAM-CLI-shaped ones, and checks the request each becomes.
func TestFixtures(t *testing.T) {
	type want struct {
		method, path, query string // path escaped, as the handler routes on it
		headers             map[string]string
		body                string
	}
	lambdaURLHello := want{"POST", "/hello", "hello=world&foo=bar",
		map[string]string{"Header2": "h1,h2", "Cookie": "foo=bar; hello=hello", "Content-Type": "application/json"}, `{"hello": "world"}`}
	apigwV2 := want{"GET", "/my/path", "parameter1=value1&parameter1=value2&parameter2=value",
		map[string]string{"Header1": "value1", "Cookie": "cookie1; cookie2"}, "{\r\n\t\"a\": 1\r\n}"}
	rest := want{"POST", "/hello/world", "name=me",
		map[string]string{"Content-Type": "application/json", "Cache-Control": "no-cache", "Headername": "headerValue"}, "{\r\n\t\"a\": 1\r\n}"}
	alb := want{"GET", "/", "key=hello", map[string]string{"X-Myheader": "123", "User-Agent": "curl/7.54.0"}, ""}
	urlGet := want{"GET", "/", "", map[string]string{"Accept": "application/xml"}, ""}
	hostile := "/files/dir%20%C3%BC/report%23v=2%231%20100%25%20a+b.txt"
	wants := map[string]want{
		"function-url-text.json":         {"PUT", "/files/hello.txt", "", map[string]string{"Content-Type": "text/plain"}, "hello, spillway\n"},
		"function-url-binary.json":       {"PUT", "/files/blob.bin", "", map[string]string{"Content-Type": "application/octet-stream"}, string(seq(64, 4))},
		"sam-local-httpapi-hello.json":   {"PUT", "/files/hello.txt", "", map[string]string{"Content-Type": "text/plain", "User-Agent": "curl/8.5.0"}, "hello, spillway\n"},
		"sam-local-httpapi-hostile.json": {"PUT", hostile, "x=%2F&y=a+b%26c", map[string]string{"Content-Type": "text/plain", "X-Forwarded-Port": "3000"}, "hello\n"},
		"sam-local-rest-hostile.json":    {"PUT", hostile, "x=%2F&y=a+b%26c", map[string]string{"Content-Type": "text/plain", "X-Forwarded-Port": "3000"}, "hello\n"},
		"aws/events/lambda-urls-request.json": {"POST", "/my/path", "parameter1=value1&parameter1=value2&parameter2=value",
			map[string]string{"Header2": "value1,value2", "Cookie": "cookie1; cookie2"}, "Hello from client!"},
		"aws/events/apigw-request.json":                                                  rest,
		"aws/events/apigw-restapi-openapi-request.json":                                  rest,
		"aws/events/apigw-v2-request-iam.json":                                           apigwV2,
		"aws/events/apigw-v2-request-jwt-authorizer.json":                                apigwV2,
		"aws/events/apigw-v2-request-lambda-authorizer.json":                             apigwV2,
		"aws/events/apigw-v2-request-no-authorizer.json":                                 {"GET", "/", "", map[string]string{"User-Agent": "curl/7.58.0"}, ""},
		"aws/events/alb-lambda-target-request-headers-only.json":                         alb,
		"aws/events/alb-lambda-target-request-multivalue-headers.json":                   alb,
		"aws/lambdaurl/function-url-domain-only-get-request.json":                        urlGet,
		"aws/lambdaurl/function-url-domain-only-get-request-trailing-slash.json":         urlGet,
		"aws/lambdaurl/function-url-domain-only-request-with-base64-encoded-body.json":   {"POST", "/", "", map[string]string{"Content-Type": "idk"}, "<idk/>"},
		"aws/lambdaurl/function-url-request-with-headers-and-cookies-and-text-body.json": lambdaURLHello,
	}

	var mu sync.Mutex
	var seen *http.Request
	var body []byte
	a := lambdahttp.New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		seen = r
		body, _ = io.ReadAll(r.Body)
	}))
	var files []string
	require.NoError(t, filepath.WalkDir("testdata", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".json") {
			files = append(files, filepath.ToSlash(strings.TrimPrefix(p, "testdata"+string(filepath.Separator))))
		}
		return err
	}))
	require.Len(t, files, len(wants), "every fixture has an expectation, and every expectation a fixture")
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			w, ok := wants[f]
			require.True(t, ok, "no expectation for %s", f)
			payload, err := os.ReadFile(filepath.Join("testdata", f))
			require.NoError(t, err)
			seen, body = nil, nil
			out, err := a.Invoke(context.Background(), payload)
			require.NoError(t, err)
			require.NotNil(t, seen, "%s", out)
			assert.Equal(t, w.method, seen.Method)
			assert.Equal(t, w.path, seen.URL.EscapedPath())
			wq, err := url.ParseQuery(w.query)
			require.NoError(t, err)
			assert.Equal(t, wq, seen.URL.Query())
			for k, v := range w.headers {
				assert.Equal(t, v, strings.Join(seen.Header.Values(k), ","), k)
			}
			assert.Equal(t, w.body, string(body))
			assert.Equal(t, int64(len(w.body)), seen.ContentLength)
		})
	}
}

func seq(n, step int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * step)
	}
	return b
}

// observed is an api.Observer that keeps the outcomes.
type observed struct {
	mu       sync.Mutex
	outcomes []api.Outcome
}

func (o *observed) UploadStarted() {}
func (o *observed) UploadDone()    {}
func (o *observed) RequestDone(out api.Outcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.outcomes = append(o.outcomes, out)
}

func newObservedEnv(t *testing.T) (*env, *observed) {
	t.Helper()
	obs := &observed{}
	return newEnvWith(t, obs), obs
}

// logLines decodes the JSON log lines.
func (e *env) logLines(t *testing.T) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for l := range strings.Lines(e.logs.String()) {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		lines = append(lines, m)
	}
	return lines
}

// TestBadEventIsAConfigurationError: an event that describes no request is
// answered 500 bad_event with a fixed message and the Lambda request ID,
// logged as an error under that ID with the detail, and counted.
func TestBadEventIsAConfigurationError(t *testing.T) {
	e, obs := newObservedEnv(t)
	resp := e.invokeAny(t, map[string]any{"Records": []any{map[string]any{"eventSource": "aws:s3"}}})
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Equal(t, "aws-req-7", resp.header("x-request-id"))
	var body wire.ErrorResponse
	require.NoError(t, json.Unmarshal([]byte(resp.Body), &body))
	assert.Equal(t, wire.Error{Code: "bad_event", Message: api.ErrorFor(apierr.ErrBadEvent).Message, RequestID: "aws-req-7"}, body.Error)

	lines := e.logLines(t)
	require.Len(t, lines, 1)
	assert.Equal(t, "ERROR", lines[0]["level"])
	assert.Equal(t, "aws-req-7", lines[0]["request_id"])
	assert.Equal(t, "bad_event", lines[0]["code"])
	assert.EqualValues(t, 500, lines[0]["status"])
	assert.Contains(t, lines[0]["error"], "without a method", "the detail goes to the log")
	require.Len(t, obs.outcomes, 1)
	assert.Equal(t, http.StatusInternalServerError, obs.outcomes[0].Status)
	assert.Equal(t, wire.CodeBadEvent, obs.outcomes[0].Code)

	// A request the event describes but the handler cannot take is the
	// client's: 400, logged and counted all the same.
	ev := producers[0].event(http.MethodPut, "/files/a%zz", "", []byte("x"), false)
	resp = e.invokeAny(t, ev)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, resp.Body)
	lines = e.logLines(t)
	require.Len(t, lines, 2)
	assert.Equal(t, "bad_request", lines[1]["code"])
	assert.Equal(t, "PUT", lines[1]["method"])
	assert.Equal(t, "/files/a%25zz", lines[1]["path"], "a path that is no valid escape is logged escaped")
	require.Len(t, obs.outcomes, 2)
	assert.True(t, obs.outcomes[1].Upload)
}

// TestResponseTooLarge: a response over the dialect's cap is never
// produced: the client gets 502 response_too_large, and the request is
// logged as an error and counted as a 502, once.
func TestResponseTooLarge(t *testing.T) {
	for _, tc := range []struct {
		producer string
		fits     int64 // a binary file whose response fits
		tooLarge int64 // and one whose response does not
	}{
		{"function-url", 4_600_000, 4_800_000},
		{"sam-local-v1", 4_600_000, 4_800_000},
		{"alb", 700_000, 760_000},
	} {
		t.Run(tc.producer, func(t *testing.T) {
			var p producer
			for _, q := range producers {
				if q.name == tc.producer {
					p = q
				}
			}
			e, obs := newObservedEnv(t)
			for _, size := range []int64{tc.fits, tc.tooLarge} {
				require.NoError(t, os.MkdirAll(e.dir, 0o755))
				name := filepath.Join(e.dir, "f.bin")
				require.NoError(t, os.WriteFile(name, seqN(size), 0o644))
				payload, err := json.Marshal(p.event(http.MethodGet, "/files/f.bin", "", nil, false))
				require.NoError(t, err)
				ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "aws-req-9"})
				out, err := e.adapter.Invoke(ctx, payload)
				require.NoError(t, err)
				limit := lambdahttp.MaxResponseBytes
				if tc.producer == "alb" {
					limit = lambdahttp.MaxALBResponseBytes
				}
				require.LessOrEqual(t, len(out), limit)
				var resp anyResponse
				require.NoError(t, json.Unmarshal(out, &resp))
				if size == tc.fits {
					require.Equal(t, http.StatusOK, resp.StatusCode)
					assert.Equal(t, seqN(size), resp.body(t))
					continue
				}
				require.Equal(t, http.StatusBadGateway, resp.StatusCode)
				assert.Equal(t, "application/json", resp.header("content-type"))
				assert.Equal(t, "aws-req-9", resp.header("x-request-id"))
				var body wire.ErrorResponse
				require.NoError(t, json.Unmarshal([]byte(resp.Body), &body))
				assert.Equal(t, wire.Error{Code: "response_too_large", Message: api.ErrorFor(apierr.ErrResponseTooLarge).Message, RequestID: "aws-req-9"}, body.Error)
				require.NoError(t, os.Remove(name))
			}
			lines := e.logLines(t)
			require.Len(t, lines, 2, "one line per request")
			assert.Equal(t, "INFO", lines[0]["level"])
			last := lines[1]
			assert.Equal(t, "ERROR", last["level"])
			assert.EqualValues(t, 502, last["status"])
			assert.Equal(t, "response_too_large", last["code"])
			assert.Equal(t, "aws-req-9", last["request_id"])
			require.Len(t, obs.outcomes, 2, "counted once")
			assert.Equal(t, http.StatusOK, obs.outcomes[0].Status)
			assert.Equal(t, http.StatusBadGateway, obs.outcomes[1].Status)
			assert.Equal(t, wire.CodeResponseTooLarge, obs.outcomes[1].Code)
		})
	}
}

func seqN(n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}
