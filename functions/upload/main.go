// Command upload is Spillway's AWS Lambda function, built as `bootstrap`.
// It serves the same API as the local server, from the same handler, behind
// a Function URL (or an API Gateway HTTP or REST API, `sam local start-api`,
// or an ALB: lambdahttp reads each one's events), spooling large bodies to
// the function's ephemeral /tmp and storing files in S3.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"spillway/api"
	"spillway/internal/buildinfo"
	"spillway/internal/bytesize"
	"spillway/lambdahttp"
	"spillway/metrics/emf"
	"spillway/spool"
	"spillway/store/s3store"
)

func main() {
	if buildinfo.Requested(os.Args[1:]) {
		fmt.Println("bootstrap", buildinfo.Read())
		return
	}
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	h, err := coldStart(context.Background(), os.Getenv, log)
	if err != nil {
		log.Error("cold start failed", "error", err)
		os.Exit(1)
	}
	lambda.Start(h)
}

// config is the function's configuration, read from the environment only.
type config struct {
	Bucket        string
	Prefix        string
	SpoolDir      string
	Threshold     int64
	MaxUploadSize int64
	MemoryBudget  int64
	Token         string
}

func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		Bucket:       getenv("SPILLWAY_BUCKET"),
		Prefix:       getenv("SPILLWAY_PREFIX"),
		SpoolDir:     getenv("SPILLWAY_SPOOL_DIR"),
		Token:        getenv("SPILLWAY_TOKEN"),
		Threshold:    spool.DefaultThreshold,
		MemoryBudget: spool.DefaultMemoryBudget,
	}
	if c.Bucket == "" {
		return c, errors.New("SPILLWAY_BUCKET is not set: the function needs a bucket to store uploads in")
	}
	if c.SpoolDir == "" {
		c.SpoolDir = "/tmp"
	}
	for _, s := range []struct {
		name string
		p    *int64
	}{
		{"SPILLWAY_THRESHOLD", &c.Threshold},
		{"SPILLWAY_MAX_UPLOAD_SIZE", &c.MaxUploadSize},
		{"SPILLWAY_MEMORY_BUDGET", &c.MemoryBudget},
	} {
		if v := getenv(s.name); v != "" {
			n, err := bytesize.Parse(v)
			if err != nil {
				return c, fmt.Errorf("%s: %w", s.name, err)
			}
			*s.p = n
		}
	}
	return c, nil
}

// coldStart builds the handler once per execution environment. /tmp
// outlives invocations, and the previous process may have died mid-upload,
// so the spool dir is swept first.
func coldStart(ctx context.Context, getenv func(string) string, log *slog.Logger) (*lambdahttp.Adapter, error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.SpoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("spool dir: %w", err)
	}
	swept, err := spool.Sweep(cfg.SpoolDir)
	if err != nil {
		log.Warn("sweeping the spool dir failed", "error", err)
	}
	spooler, err := spool.New(spool.Config{
		Dir:          cfg.SpoolDir,
		Threshold:    cfg.Threshold,
		MemoryBudget: cfg.MemoryBudget,
		MaxSize:      cfg.MaxUploadSize,
	})
	if err != nil {
		return nil, err
	}
	client, err := s3store.NewClient(ctx, s3store.EndpointSet(getenv))
	if err != nil {
		return nil, err
	}
	st := s3store.New(client, cfg.Bucket, s3store.Options{Prefix: cfg.Prefix})
	bi := buildinfo.Read()
	log.Info("cold start", "version", bi.Version, "revision", bi.Revision, "bucket", cfg.Bucket, "prefix", cfg.Prefix, "spool_dir", cfg.SpoolDir,
		"threshold", bytesize.Format(cfg.Threshold), "max_upload_size", cfg.MaxUploadSize,
		"memory_budget", bytesize.Format(cfg.MemoryBudget), "token", cfg.Token != "", "orphans_swept", swept, "store", st.Capabilities())
	// CloudWatch turns these stdout lines into metrics.
	metrics := emf.New(os.Stdout, "Spillway", spooler)
	metrics.ColdStart(swept)
	return lambdahttp.New(api.New(api.Config{
		Spooler: spooler, Store: st, Logger: log, Token: cfg.Token, Observer: metrics,
		Version: bi.Version, Revision: bi.Revision,
	})), nil
}
