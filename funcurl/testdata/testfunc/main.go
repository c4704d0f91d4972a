// Command testfunc is a Lambda function for funcurl's tests, run under the
// real Runtime Interface Emulator. It answers by path: /echo returns the
// event exactly as it arrived, /size how large it was, and the other paths
// fail or answer in the ways a Function URL must map. With TESTFUNC_RECORD
// set, every invocation appends a line to that file, so a test can tell
// whether the function ran.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

type handler struct{}

func (handler) Invoke(_ context.Context, payload []byte) ([]byte, error) {
	if path := os.Getenv("TESTFUNC_RECORD"); path != "" {
		if err := record(path, len(payload)); err != nil {
			return nil, err
		}
	}
	var ev events.LambdaFunctionURLRequest
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, err
	}
	resp := events.LambdaFunctionURLResponse{StatusCode: 200, Headers: map[string]string{"content-type": "application/json"}}
	switch ev.RawPath {
	case "/echo":
		resp.Body = string(payload)
	case "/size":
		// The body's value as it stands in the JSON, without its quotes.
		var raw struct {
			Body json.RawMessage `json:"body"`
		}
		if err := json.Unmarshal(payload, &raw); err != nil {
			return nil, err
		}
		size, err := json.Marshal(map[string]int{"event": len(payload), "body": max(len(raw.Body)-2, 0)})
		if err != nil {
			return nil, err
		}
		resp.Body = string(size)
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

func record(path string, size int) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(f, size)
	return errors.Join(err, f.Close())
}

func main() { lambda.Start(handler{}) }
