package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"

	"github.com/aws/aws-lambda-go/events"

	"spillway/api"
	"spillway/internal/uploadtest"
	"spillway/lambdahttp"
	"spillway/metrics/emf"
	"spillway/spool"
	"spillway/store/dirstore"
)

// lambdaEventSize is the decoded body of the measured event: 4 MiB, about
// the most a Function URL request carries once base64-encoded.
const lambdaEventSize = 4 << 20

// lambdaRuns is how many events are measured after one warm-up.
const lambdaRuns = 5

type lambdaResult struct {
	eventBody      int     // bytes of the base64 body string
	bytesPerOp     float64 // mean allocated per Serve
	maxBytes       uint64  // the most any one Serve allocated
	allocsPerOp    float64
	spool          string
	err            string
	measuredEvents int
}

// measureLambda serves a 4 MiB base64 PUT event through lambdahttp and the
// API handler configured as the function configures them (JSON log, EMF
// metrics, both to io.Discard here) but with a directory store, and counts
// what each Serve allocates beyond the event, which is built beforehand.
func measureLambda(ctx context.Context, work string) (res lambdaResult) {
	dir, err := os.MkdirTemp(work, "lambda-")
	if err != nil {
		res.err = err.Error()
		return res
	}
	defer os.RemoveAll(dir)
	spoolDir := filepath.Join(dir, "spool")
	if err := os.Mkdir(spoolDir, 0o700); err != nil {
		res.err = err.Error()
		return res
	}
	sp, err := spool.New(spool.Config{Dir: spoolDir, Threshold: spool.DefaultThreshold, MemoryBudget: spool.DefaultMemoryBudget})
	if err != nil {
		res.err = err.Error()
		return res
	}
	storeDir := filepath.Join(dir, "store")
	st, _, err := dirstore.Open(storeDir, dirstore.Options{})
	if err != nil {
		res.err = err.Error()
		return res
	}
	defer st.Close()
	adapter := lambdahttp.New(api.New(api.Config{
		Spooler:  sp,
		Store:    st,
		Logger:   slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Observer: emf.New(io.Discard, "Spillway", sp),
	}))

	raw := uploadtest.File{Seed: 2, Size: lambdaEventSize}.Bytes()
	ev := events.LambdaFunctionURLRequest{
		Version:         "2.0",
		Headers:         map[string]string{"content-type": "application/octet-stream", "host": "abc123.lambda-url.us-east-1.on.aws"},
		Body:            base64.StdEncoding.EncodeToString(raw),
		IsBase64Encoded: true,
		RequestContext: events.LambdaFunctionURLRequestContext{
			DomainName: "abc123.lambda-url.us-east-1.on.aws",
			HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{
				Method: http.MethodPut, Protocol: "HTTP/1.1", SourceIP: "127.0.0.1", UserAgent: "bench",
			},
		},
	}
	raw = nil
	res.eventBody = len(ev.Body)

	// One collection up front, none between runs: like testing.B, this
	// measures a warm process, whose spool keeps its copy buffers pooled
	// (a collection would empty the pools, and refilling them would be
	// counted against the handler).
	runtime.GC()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var total, mallocs uint64
	for i := range lambdaRuns + 1 {
		if err := ctx.Err(); err != nil {
			res.err = err.Error()
			return res
		}
		ev.RawPath = "/files/event-" + strconv.Itoa(i) + ".bin"
		ev.RequestContext.HTTP.Path = ev.RawPath
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		resp := adapter.Serve(ctx, &ev)
		runtime.ReadMemStats(&after)
		if resp.StatusCode != http.StatusCreated {
			res.err = fmt.Sprintf("status %d: %s", resp.StatusCode, resp.Body)
			return res
		}
		if err := os.Remove(filepath.Join(storeDir, "event-"+strconv.Itoa(i)+".bin")); err != nil {
			res.err = err.Error()
			return res
		}
		if i == 0 {
			continue // warm-up: pools, lazily built tables
		}
		alloc := after.TotalAlloc - before.TotalAlloc
		total += alloc
		res.maxBytes = max(res.maxBytes, alloc)
		mallocs += after.Mallocs - before.Mallocs
		res.measuredEvents++
	}
	stats := sp.Stats()
	if stats.DiskBodies > 0 {
		res.spool = "disk"
	} else {
		res.spool = "memory"
	}
	res.bytesPerOp = float64(total) / lambdaRuns
	res.allocsPerOp = float64(mallocs) / lambdaRuns
	return res
}
