// Command testfunc is a Lambda function for funcurl's tests, run under the
// real Runtime Interface Emulator. It answers by path: /echo returns the
// event exactly as it arrived, and the other paths fail or answer in the
// ways a Function URL must map.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

type handler struct{}

func (handler) Invoke(_ context.Context, payload []byte) ([]byte, error) {
	var ev events.LambdaFunctionURLRequest
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, err
	}
	resp := events.LambdaFunctionURLResponse{StatusCode: 200, Headers: map[string]string{"content-type": "application/json"}}
	switch ev.RawPath {
	case "/echo":
		resp.Body = string(payload)
	case "/pid":
		resp.Body = strconv.Itoa(os.Getpid())
	case "/error":
		return nil, errors.New("boom")
	case "/panic":
		panic("kaboom")
	case "/exit":
		os.Exit(3)
	case "/plain":
		return []byte(`"Hello, world!"`), nil
	case "/big":
		resp.Body = strings.Repeat("x", 7<<20)
	case "/binary":
		resp.StatusCode = 201
		resp.Headers = map[string]string{"content-type": "application/octet-stream", "x-custom": "a,b"}
		resp.Cookies = []string{"a=1; Path=/", "b=2; Max-Age=60"}
		resp.Body = base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 0xff, 0xfe})
		resp.IsBase64Encoded = true
	default:
		resp.StatusCode = 404
	}
	return json.Marshal(resp)
}

func main() { lambda.Start(handler{}) }
