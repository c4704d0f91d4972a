// Command upload is Spillway's AWS Lambda function, built as `bootstrap`.
// It serves the same API as the local server, from the same handler, behind
// a Function URL (or an API Gateway HTTP or REST API, `sam local start-api`,
// or an ALB: lambdahttp reads each one's events), spooling large bodies to
// the function's ephemeral /tmp and storing files in S3.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"spillway/api"
	"spillway/internal/buildinfo"
	"spillway/internal/config"
	"spillway/internal/hook"
	"spillway/internal/jwtauth"
	"spillway/lambdahttp"
	"spillway/metrics/emf"
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

// coldStart builds the handler once per execution environment. /tmp
// outlives invocations, and the previous process may have died mid-upload,
// so the spool dir is swept first.
func coldStart(ctx context.Context, getenv func(string) string, log *slog.Logger) (*lambdahttp.Adapter, error) {
	cfg, err := config.Parse(config.Function, nil, getenv, io.Discard)
	if err != nil {
		return nil, err
	}
	spooler, swept, err := cfg.Spooler(cfg.MaxUploadSize, log)
	if err != nil {
		return nil, err
	}
	client, err := s3store.NewEnvClient(getenv)
	if err != nil {
		return nil, err
	}
	st := s3store.New(client, cfg.Bucket, s3store.Options{Prefix: cfg.Prefix})
	bi := buildinfo.Read()
	// The settings inline, at the top level of the JSON line.
	log.Info("cold start", "version", bi.Version, "revision", bi.Revision, slog.Any("", cfg), "orphans_swept", swept, "store", st.Capabilities())
	var auth api.Authenticator
	if cfg.JWKSURL != "" {
		v, err := jwtauth.New(ctx, jwtauth.Config{JWKSURL: cfg.JWKSURL, Issuer: cfg.JWTIssuer,
			Audience: cfg.JWTAudience, SpaceClaim: cfg.UserPrefixClaim})
		if err != nil {
			return nil, err
		}
		auth = v
	}
	// CloudWatch turns these stdout lines into metrics.
	metrics := emf.New(os.Stdout, "Spillway", spooler)
	metrics.ColdStart(swept)
	return lambdahttp.New(api.New(api.Config{
		Spooler: spooler, Store: st, Logger: log, Token: cfg.Token, Observer: metrics,
		Authenticator: auth, UserQuota: cfg.UserQuota, UploadSecret: []byte(cfg.UploadSecret),
		Version: bi.Version, Revision: bi.Revision, Hooks: hooks(cfg), AllowTypes: cfg.AllowTypes,
		// S3's lifecycle rule removes the files; the handler lists when.
		Retention: cfg.Retention,
	})), nil
}

// hooks is the hook client of SPILLWAY_HOOK_URL, or nil without one. A
// post-finish delays the answer by at most hook.DefaultBudget, far inside
// the function's time-out, so its retries fit in the invocation.
func hooks(cfg config.Config) api.Hooks {
	if cfg.HookURL == "" {
		return nil
	}
	return hook.New(hook.Config{URL: cfg.HookURL, Secret: []byte(cfg.HookSecret)})
}
