package lambdahttp_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"spillway/api"
	"spillway/internal/uploadtest"
	"spillway/lambdahttp"
	"spillway/metrics/emf"
	"spillway/spool"
	"spillway/store/dirstore"
)

// BenchmarkServeBase64Event runs a 4 MB base64 Function URL event (a raw
// PUT past the threshold, so it spools to disk) through the adapter and the
// handler, configured as the function configures them (JSON log lines and
// EMF metrics, here to io.Discard) but storing to a directory. The event is
// decoded once, outside the timer, so B/op is what serving it allocates
// beyond the event itself; the target is under 1 MiB. The Invoke variant
// also decodes the JSON payload on every iteration, as the runtime does.
func BenchmarkServeBase64Event(b *testing.B) {
	const size = 4 << 20
	f := uploadtest.File{Seed: 8, Size: size}
	payload := uploadtest.Event(b, uploadtest.FunctionURL, http.MethodPut, "/files/event.bin",
		map[string]string{"content-type": "application/octet-stream"}, f.Bytes(), true)

	b.Run("Serve", func(b *testing.B) {
		a, dir := benchAdapter(b)
		var ev events.LambdaFunctionURLRequest
		if err := json.Unmarshal(payload, &ev); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(size)
		b.ReportAllocs()
		b.ReportMetric(float64(len(ev.Body)), "event-body-B")
		b.ResetTimer()
		for i := range b.N {
			ev.RawPath = "/files/event-" + strconv.Itoa(i) + ".bin"
			resp := a.Serve(context.Background(), &ev)
			if resp.StatusCode != http.StatusCreated {
				b.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
			}
			b.StopTimer()
			uploadtest.EmptyDir(b, dir)
			b.StartTimer()
		}
	})
	b.Run("Invoke", func(b *testing.B) {
		a, dir := benchAdapter(b)
		b.SetBytes(size)
		b.ReportAllocs()
		b.ReportMetric(float64(len(payload)), "payload-B")
		b.ResetTimer()
		for range b.N {
			out, err := a.Invoke(context.Background(), payload)
			if err != nil {
				b.Fatal(err)
			}
			var resp events.LambdaFunctionURLResponse
			if err := json.Unmarshal(out, &resp); err != nil || resp.StatusCode != http.StatusCreated {
				b.Fatalf("status %d: %s (%v)", resp.StatusCode, resp.Body, err)
			}
			b.StopTimer()
			uploadtest.EmptyDir(b, dir)
			b.StartTimer()
		}
	})
}

func benchAdapter(b *testing.B) (*lambdahttp.Adapter, string) {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "store")
	sp, err := spool.New(spool.Config{Dir: b.TempDir(), Threshold: spool.DefaultThreshold, MemoryBudget: spool.DefaultMemoryBudget})
	if err != nil {
		b.Fatal(err)
	}
	st, _, err := dirstore.Open(dir, dirstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	h := api.New(api.Config{
		Spooler:  sp,
		Store:    st,
		Logger:   slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Observer: emf.New(io.Discard, "Spillway", sp),
	})
	return lambdahttp.New(h), dir
}
